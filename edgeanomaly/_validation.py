"""Small validators shared across layers (torch-free)."""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable, TypeVar

from edgeanomaly.errors import NotFittedError

__all__ = ["check_is_fitted", "env_limit"]

N = TypeVar("N", int, float)


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


def env_limit(variable: str, default: N, kind: Callable[[str], N], minimum: N, error: type[Exception]) -> N:
    """A safety limit: ``$variable`` parsed with ``kind`` if set, else ``default``.

    A value that does not parse, or is below ``minimum`` (NaN included), raises ``error``
    naming the variable, what it must be and what it was.
    """
    value = os.environ.get(variable)
    if value is None:
        return default
    try:
        limit: N | None = kind(value)
    except ValueError:
        limit = None
    if limit is None or not limit >= minimum:
        what = "a whole number" if kind is int else "a number"
        raise error(f"Expected ${variable} to be {what} >= {minimum:g}, got {value!r}")
    return limit
