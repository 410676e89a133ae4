"""Model registry: ``@register_model``, ``create_model(name, **kwargs)``, ``list_models()``.

The registry feeds CLI choices and test parametrisation: a registered model is exported,
round-tripped and contract-tested everywhere without further wiring.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from edgeanomaly._optional import check_choice

__all__ = ["register_model", "unregister_model", "create_model", "list_models", "model_class"]

_MODELS: dict[str, type] = {}
T = TypeVar("T", bound=type)


def register_model(cls: T) -> T:
    """Class decorator: register ``cls`` under ``cls.name``."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__name__} needs a class attribute 'name' to be registered")
    if name in _MODELS and _MODELS[name] is not cls:
        raise ValueError(f"A model named {name!r} is already registered ({_MODELS[name].__name__})")
    _MODELS[name] = cls
    return cls


def unregister_model(name: str) -> None:
    """Remove a registered model (for plugins and tests that registered one)."""
    _MODELS.pop(model_class(name).name)


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_MODELS)


def model_class(name: str) -> type:
    """The class registered as ``name`` (ConfigError with close matches when unknown)."""
    check_choice("model", name, _MODELS)
    return _MODELS[name]


def create_model(name: str, **kwargs: Any) -> Any:
    """Instantiate a registered model with its settings.

    >>> m = create_model("patchcore", backbone="resnet18", pretrained=False, random_state=0)
    >>> m.name, m.task
    ('patchcore', 'segmentation')
    """
    return model_class(name)(**kwargs)


ModelFactory = Callable[..., Any]
