"""Small validators shared across layers (torch-free)."""

from __future__ import annotations

from typing import Any, Iterable

from edgeanomaly.errors import NotFittedError

__all__ = ["check_is_fitted"]


def check_is_fitted(estimator: Any, attributes: str | Iterable[str] | None = None) -> None:
    """Raise :class:`NotFittedError` unless ``estimator`` has its fitted attributes.

    Fitted attributes end in ``_`` (scikit-learn convention). With ``attributes=None`` any
    public attribute ending in ``_`` counts; otherwise every named attribute must be set and
    not ``None``.
    """
    name = type(estimator).__name__
    if attributes is None:
        fitted = any(
            k.endswith("_") and not k.startswith("_") and v is not None
            for k, v in vars(estimator).items()
        )
    else:
        names = [attributes] if isinstance(attributes, str) else list(attributes)
        fitted = all(getattr(estimator, a, None) is not None for a in names)
    if not fitted:
        raise NotFittedError(f"This {name} instance is not fitted yet: call fit() first.")
