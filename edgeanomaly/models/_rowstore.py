"""The training rows a one-pass model keeps during ``fit``, in large blocks.

A 2,000-image PatchCore fit keeps 2 million rows of 152 floats (1.2 GB) and joins them into
one tensor for the coreset. Kept as one tensor per batch (10 MiB each), they come from
glibc's heap once any temporary of that size has been freed (its mmap threshold rises to
the freed size, at most 32 MiB), and a heap block freed after copying it into the joined
tensor is not given back to the system: the rows were held twice at the end of the pass,
and the fit peaked at 4.4 GB (issue 22). Blocks of 64 MiB are always mapped on their own
and unmapped when freed, so joining them costs one block beyond the rows.
"""

from __future__ import annotations

import torch

__all__ = ["RowStore"]

#: Bytes per block: above glibc's largest mmap threshold (32 MiB on 64-bit), so each block is
#: its own mapping, returned to the system when freed.
BLOCK_BYTES = 64 * 2**20


class RowStore:
    """Rows of one shape appended batch by batch, kept in blocks of ``block_bytes``.

    ``append`` copies a batch's rows into the current block (the batch can then be freed);
    ``keep`` drops rows by a mask over everything appended so far; ``take`` returns all rows
    as one tensor, freeing each block as soon as it is copied, and empties the store.

    >>> s = RowStore(); s.append(torch.ones(2, 3)); s.append(torch.zeros(1, 3))
    >>> s.take().shape
    torch.Size([3, 3])
    """

    def __init__(self, block_bytes: int = BLOCK_BYTES) -> None:
        self.block_bytes = int(block_bytes)
        self._blocks: list[torch.Tensor] = []
        self._fill = 0  # rows used in the last block
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def _new_block(self, like: torch.Tensor) -> torch.Tensor:
        row_bytes = max(1, like[0].numel() * like.element_size()) if like.shape[0] else 1
        rows = max(1, self.block_bytes // row_bytes)
        block = torch.empty((rows, *like.shape[1:]), dtype=like.dtype, device=like.device)
        self._blocks.append(block)
        self._fill = 0
        return block

    def append(self, rows: torch.Tensor) -> None:
        """Copy ``rows`` (N, ...) in after the rows already kept."""
        if self._blocks:
            first = self._blocks[0]
            if rows.shape[1:] != first.shape[1:] or rows.dtype != first.dtype or rows.device != first.device:
                raise ValueError(
                    f"Expected rows of shape (N, {', '.join(map(str, first.shape[1:]))}) {first.dtype} on {first.device}, "
                    f"got {tuple(rows.shape)} {rows.dtype} on {rows.device}"
                )
        pos, n = 0, int(rows.shape[0])
        while pos < n:
            block = self._blocks[-1] if self._blocks and self._fill < self._blocks[-1].shape[0] else self._new_block(rows)
            step = min(n - pos, block.shape[0] - self._fill)
            block[self._fill : self._fill + step] = rows[pos : pos + step]
            self._fill += step
            pos += step
        self._n += n

    def _chunks(self) -> list[torch.Tensor]:
        """The used part of each block, in order (views)."""
        if not self._blocks:
            return []
        return [*self._blocks[:-1], self._blocks[-1][: self._fill]]

    def keep(self, mask: torch.Tensor) -> None:
        """Keep only the rows where ``mask`` (bool, one per row appended so far) is True."""
        if mask.shape != (self._n,):
            raise ValueError(f"Expected a mask of shape ({self._n},), got {tuple(mask.shape)}")
        old, self._blocks, self._fill, self._n = self._chunks(), [], 0, 0
        pos = 0
        old.reverse()
        while old:
            chunk = old.pop()
            m = mask[pos : pos + chunk.shape[0]].to(chunk.device)
            pos += int(chunk.shape[0])
            self.append(chunk[m])
            del chunk  # the old block goes as soon as its kept rows are copied

    def take(self) -> torch.Tensor:
        """All rows as one (N, ...) tensor; the store is emptied."""
        chunks, self._blocks, self._fill, n, self._n = self._chunks(), [], 0, self._n, 0
        if not chunks:
            raise ValueError("No rows were appended")
        out = torch.empty((n, *chunks[0].shape[1:]), dtype=chunks[0].dtype, device=chunks[0].device)
        pos = 0
        chunks.reverse()
        while chunks:
            chunk = chunks.pop()
            out[pos : pos + chunk.shape[0]] = chunk
            pos += int(chunk.shape[0])
            del chunk  # unmapped here: the peak is the rows plus one block
        return out
