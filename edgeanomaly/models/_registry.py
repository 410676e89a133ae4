"""Model registry: ``@register_model``, ``create_model(name, **kwargs)``, ``list_models()``.

The registry feeds CLI choices and test parametrisation: a registered model is exported,
round-tripped and contract-tested everywhere without further wiring.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import numbers
from typing import Any, Callable, Sequence, TypeVar

from edgeanomaly._optional import check_choice
from edgeanomaly.errors import ConfigError, UnknownSettingError

__all__ = ["register_model", "unregister_model", "create_model", "list_models", "model_class"]

_MODELS: dict[str, type] = {}
T = TypeVar("T", bound=type)


def register_model(cls: T) -> T:
    """Class decorator: register ``cls`` under ``cls.name``. Its constructor checks its settings
    (:func:`check_setting_kinds`; an ``AnomalyModel`` subclass's already does)."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__name__} needs a class attribute 'name' to be registered")
    if name in _MODELS and _MODELS[name] is not cls:
        raise ValueError(f"A model named {name!r} is already registered ({_MODELS[name].__name__})")
    if not getattr(cls.__init__, "checks_settings", False):
        cls.__init__ = checking_settings(cls, cls.__init__)  # type: ignore[misc]
    _MODELS[name] = cls
    return cls


def checking_settings(cls: type, init: Callable[..., None]) -> Callable[..., None]:
    """``cls.__init__`` that first checks its settings' kinds and names (:func:`check_setting_kinds`);
    positional arguments are checked under the names they bind to."""
    names = [k for k, p in inspect.signature(init).parameters.items() if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD][1:]

    @functools.wraps(init)
    def checked(self: Any, *args: Any, **kwargs: Any) -> None:
        check_setting_kinds(cls, {**dict(zip(names, args)), **kwargs})
        init(self, *args, **kwargs)

    checked.checks_settings = True  # type: ignore[attr-defined]
    return checked


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
    return model_class(name)(**kwargs)  # its constructor checks its settings (register_model, check_setting_kinds)


def named_settings(cls: type) -> list[str]:
    """The keyword names ``cls``'s constructor declares (not ``self``, ``*args`` or ``**kwargs``)."""
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [k for k, p in inspect.signature(cls.__init__).parameters.items() if k != "self" and p.kind in named]


def close_names(unknown: Sequence[str], known: Sequence[str]) -> str:
    """``'epoch' (did you mean 'epochs'?), 'foo'``: each unknown name with its closest known one."""
    hints = {k: difflib.get_close_matches(k, known, n=1) for k in unknown}
    return ", ".join(f"{k!r}" + (f" (did you mean {h[0]!r}?)" if h else "") for k, h in hints.items())


#: what each annotated kind accepts, and how an error names it
_KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "int": (lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool), "an integer"),  # NumPy's too
    "float": (lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool), "a number"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "None": (lambda v: v is None, "None"),
}


def check_setting_kinds(cls: type, settings: dict[str, Any]) -> None:
    """ConfigError naming the first of ``settings`` whose value is not of the kind ``cls``'s
    constructor declares (``bool``, ``int``, ``float``, ``str``, ``None`` and their unions;
    other annotations are left to the model): ``--param coreset_ratio=abc`` says so instead of
    failing inside the model, and ``num_neighbors=9.5`` is not taken as 9. A setting the
    constructor does not take is an :class:`~edgeanomaly.errors.UnknownSettingError` naming the
    close ones (a model whose constructor takes ``**options`` checks those itself)."""
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):  # else the model checks its own
        known = named_settings(cls)
        unknown = [k for k in settings if k not in known]
        if unknown:
            raise UnknownSettingError(f"{cls.__name__}() got unexpected keyword arguments: {close_names(unknown, known)}; "
                                      f"it takes {', '.join(known)}")
    for key, value in settings.items():
        p = params.get(key)
        kinds = [k.strip() for k in str(p.annotation).split("|")] if p is not None else []
        if not kinds or any(k not in _KINDS for k in kinds):
            continue
        if not any(_KINDS[k][0](value) for k in kinds):
            what = " or ".join(_KINDS[k][1] for k in kinds if not (k == "int" and "float" in kinds))  # a number covers it
            raise ConfigError(f"Expected {key} as {what}, got {value!r}")


ModelFactory = Callable[..., Any]
