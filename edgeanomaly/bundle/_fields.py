"""Named validators for manifest fields.

Each validator takes the value and ``where``, the dotted path of the field inside
``manifest.json`` (``"artifacts[1].format"``), and raises :class:`ManifestFieldError`
naming that path. Numbers from NumPy are converted to plain Python numbers so that a
manifest always serialises to JSON.
"""

from __future__ import annotations

import difflib
import math
import numbers
from datetime import datetime
from typing import Any, Iterable, Mapping, NoReturn

from edgeanomaly.errors import BundleError

__all__ = [
    "ManifestFieldError",
    "fail",
    "check_keys",
    "as_str",
    "as_int",
    "as_float",
    "as_optional_float",
    "as_choice",
    "as_timestamp",
    "as_json_value",
]


class ManifestFieldError(BundleError):
    """A manifest field is missing, unknown, of the wrong type or out of range.

    Attributes:
        field: dotted path of the field, e.g. ``"calibration.image_min"``.
        problem: what is wrong with it.
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        where = f"field '{field}'" if field else "top level"
        super().__init__(f"Invalid manifest {where}: {problem}")


def fail(where: str, problem: str) -> NoReturn:
    """Raise :class:`ManifestFieldError` for ``where``."""
    raise ManifestFieldError(where, problem)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def check_keys(
    value: Any,
    where: str,
    required: Iterable[str],
    optional: Iterable[str] = (),
) -> Mapping[str, Any]:
    """Check that ``value`` is a JSON object with exactly the ``required`` (+ ``optional``) keys.

    >>> check_keys({"a": 1}, "x", ["a"])
    {'a': 1}
    """
    if not isinstance(value, Mapping):
        fail(where, f"expected a JSON object, got {_type(value)}")
    required = list(required)
    allowed = [*required, *optional]
    unknown = [k for k in value if k not in allowed]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            hints.append(f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key))
        fail(where, f"unknown key(s) {', '.join(hints)}; expected keys: {', '.join(allowed)}")
    missing = [k for k in required if k not in value]
    if missing:
        fail(where, f"missing key(s) {', '.join(repr(k) for k in missing)}")
    return value


def _type(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def as_str(value: Any, where: str, *, allow_empty: bool = True) -> str:
    if not isinstance(value, str):
        fail(where, f"expected a string, got {_type(value)} {value!r}")
    if not allow_empty and not value:
        fail(where, "expected a non-empty string")
    return value


def as_int(value: Any, where: str, *, minimum: int | None = None) -> int:
    # bool is an int in Python but never a count or a size in a manifest.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        fail(where, f"expected an integer, got {_type(value)} {value!r}")
    out = int(value)
    if minimum is not None and out < minimum:
        fail(where, f"expected an integer >= {minimum}, got {out}")
    return out


def as_float(value: Any, where: str) -> float:
    """A finite number (int or float, NumPy scalars included) as a Python float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        fail(where, f"expected a number, got {_type(value)} {value!r}")
    out = float(value)
    if not math.isfinite(out):
        fail(where, f"expected a finite number, got {out}")
    return out


def as_optional_float(value: Any, where: str) -> float | None:
    return None if value is None else as_float(value, where)


def as_choice(value: Any, where: str, choices: Iterable[str]) -> str:
    options = list(choices)
    if value not in options:
        fail(where, f"expected one of {', '.join(repr(c) for c in options)}, got {value!r}")
    return value


def as_timestamp(value: Any, where: str) -> str:
    """An ISO 8601 timestamp string such as ``2026-01-31T12:00:00Z`` (kept verbatim)."""
    text = as_str(value, where, allow_empty=False)
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        fail(where, f"expected an ISO 8601 timestamp like '2026-01-31T12:00:00Z', got {text!r}")
    return text


def as_json_value(value: Any, where: str) -> Any:
    """A JSON-safe copy of ``value``: dicts with str keys, lists, str, bool, None, numbers.

    Non-finite floats (an undefined metric is NaN) become ``None``: strict JSON has no NaN,
    and a device-side reader in another language must be able to parse the manifest.
    """
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        out = float(value)
        return out if math.isfinite(out) else None
    if isinstance(value, Mapping):
        result = {}
        for key, item in value.items():
            if not isinstance(key, str):
                fail(where, f"expected string keys, got {_type(key)} {key!r}")
            result[key] = as_json_value(item, _join(where, key))
        return result
    if isinstance(value, (list, tuple)):
        return [as_json_value(item, f"{where}[{i}]") for i, item in enumerate(value)]
    fail(where, f"expected a JSON value (object, array, string, number, bool, null), got {_type(value)}")
