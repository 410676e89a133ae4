"""The stateful twin of a functional metric, built from the same private stages."""

from __future__ import annotations

from typing import Any, Callable, Generic, Sequence, TypeVar

from edgeanomaly.metrics._validate import MetricInputError

__all__ = ["Accumulator"]

_Chunk = TypeVar("_Chunk")
_Out = TypeVar("_Out")
_Self = TypeVar("_Self", bound="Accumulator[Any, Any]")


class Accumulator(Generic[_Chunk, _Out]):
    """``update()`` validates and formats a batch into a chunk; ``compute()`` merges the chunks
    and runs the compute stage.

    A subclass only names its three stages (``_format``, ``_merge``, ``_compute``), which are
    the very functions the functional metric calls, so the two cannot drift. Settings given
    to ``__init__`` are validated there and passed to ``_compute``.
    """

    _format: Callable[..., _Chunk]
    _merge: Callable[[Sequence[_Chunk]], _Chunk]
    _compute: Callable[..., _Out]

    def __init__(self) -> None:
        self._chunks: list[_Chunk] = []

    def _settings(self) -> dict[str, Any]:
        return {}

    def update(self: _Self, *args: Any) -> _Self:
        """Add a batch; returns ``self`` so calls chain."""
        self._chunks.append(type(self)._format(*args))
        return self

    def reset(self: _Self) -> _Self:
        """Forget every batch."""
        self._chunks = []
        return self

    def compute(self) -> _Out:
        """The metric over every batch given since construction or :meth:`reset`."""
        if not self._chunks:
            raise MetricInputError(f"Expected at least one {type(self).__name__}.update() before compute()")
        if len(self._chunks) > 1:
            # merged once, so repeated compute() calls do not concatenate again
            self._chunks = [type(self)._merge(self._chunks)]
        return type(self)._compute(self._chunks[0], **self._settings())

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self._settings().items())
        return f"{type(self).__name__}({settings})"
