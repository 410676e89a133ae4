"""Greedy k-center coreset selection (Sener and Savarese 2018), as PatchCore uses it."""

from __future__ import annotations

from typing import Any, Callable

import torch

from edgeanomaly._validation import check_is_fitted
from edgeanomaly.components._buffer import DynamicBufferModule
from edgeanomaly.components._random_projection import (
    RandomState,
    SparseRandomProjection,
    johnson_lindenstrauss_min_dim,
    make_generator,
)
from edgeanomaly.components._validate import check_float_tensor
from edgeanomaly.errors import ConfigError

__all__ = ["KCenterGreedy", "CORESET_METHODS"]

#: ``"greedy"``: the exact farthest-first traversal of all rows (the oracle, cost N x picks);
#: ``"chunked"``: the same traversal inside each part of a seeded random partition of the
#: rows into parts of at most ``chunk_rows`` rows (cost chunk_rows x picks: linear in N).
CORESET_METHODS = ("greedy", "chunked")
#: Progress callback of ``fit``: ``(picks done, picks in all)``.
Progress = Callable[[int, int], None]

# Slack on the triangle-inequality test that skips a point: a skipped point must be one whose
# distance cannot shrink, also after float rounding (distances are centred first, so the
# expansion |x|^2 + |c|^2 - 2 x.c has a small relative error).
_PRUNE_SLACK = 1e-3
# Above this share of candidate points one dense pass is cheaper than gathering the rows.
_DENSE_SHARE = 0.25


class KCenterGreedy(DynamicBufferModule):
    """Select a coreset of rows that covers an embedding: greedy k-center (farthest-first).

    ``fit`` starts from a random row (drawn from ``random_state``), keeps the distance of every
    row to its nearest selected row and repeatedly selects the row farthest from the
    selection, like PatchCore's coreset subsampling. Distances are Euclidean on a sparse
    random projection of the embedding, as in PatchCore and anomalib.

    The result is the one of the naive algorithm (recompute all distances to the selection
    at every step) on the same projected data, up to float rounding between rows at
    practically equal distances; it is obtained faster because a
    row ``x`` whose nearest selected row ``a`` satisfies ``d(a, c) >= 2 d(x, a)`` cannot get
    closer to a new centre ``c`` (triangle inequality), so only the other rows are visited.
    On CNN embeddings that skips about 95 % of the rows per step; on unstructured data (random
    noise) where it cannot, each step is one dense, column-major matrix-vector pass. ``fit``
    runs on one thread (restoring the setting after): the steps are short memory-bound passes
    for which a second thread costs more in synchronisation than it gains.

    Ties go to the lowest row index, and no row is selected twice (when the embedding has
    fewer distinct rows than ``n_select``, duplicates of selected rows come last).

    ``method="chunked"`` (for large N) partitions the rows at random (seeded) into
    ``ceil(N / chunk_rows)`` parts of equal size and runs the same traversal in each part,
    with the picks shared out in proportion to the part sizes. The cost is
    ``chunk_rows x n_select`` instead of ``N x n_select``, linear in N at a fixed ratio, and
    only one part is held (projected, centred) at a time. What it keeps of the greedy: every
    row is within its part's covering radius of a selected row, and a row far from all
    others (a rare nominal patch) is still picked first in its part. What it gives up: parts
    do not see each other's picks, so common patches are covered once per part. When
    ``N <= chunk_rows`` it is exactly the greedy. docs/BENCHMARKS.md compares both.

    On a CUDA (or other non-CPU) tensor the traversal runs on that device without pruning
    (dense update per step, which a GPU does in microseconds) and without a host
    synchronisation per step.

    Differences to anomalib's ``KCenterGreedy``: the random start row is the first selected
    row (anomalib only uses it to initialise the distances), and the start is drawn from a
    local generator instead of the global RNG.

    Args:
        coreset_ratio: share of rows to select, in (0, 1]; ``int(N * coreset_ratio)``
            rows, at least one.
        n_samples: number of rows to select; overrides ``coreset_ratio`` when given.
        projection_dim: ``"auto"``: the Johnson-Lindenstrauss dimension for ``N`` rows and
            ``eps`` (no projection when that is not smaller than ``D``); an int: that
            dimension; ``None``: distances on the embedding itself.
        eps: distortion for ``projection_dim="auto"``. The default 0.9 is anomalib's; for
            32,768 rows it gives 256 dimensions.
        random_state: int, ``torch.Generator`` or None. The projection is drawn first, then
            the start row (``"chunked"``: the partition, then a start row per part); the
            global RNG is never touched.
        method: ``"greedy"`` (exact) or ``"chunked"``; see above.
        chunk_rows: the largest part of ``"chunked"``.

    Fitted attributes (state-dict buffer): ``indices_`` ``(n_selected,)`` int64 row indices
    in selection order.

    >>> emb = torch.randn(1000, 64, generator=torch.Generator().manual_seed(0))
    >>> sampler = KCenterGreedy(coreset_ratio=0.1, random_state=0).fit(emb)
    >>> tuple(sampler.select(emb).shape)
    (100, 64)
    """

    indices_: torch.Tensor | None

    def __init__(
        self,
        coreset_ratio: float = 0.1,
        n_samples: int | None = None,
        projection_dim: int | str | None = "auto",
        eps: float = 0.9,
        random_state: RandomState = None,
        method: str = "greedy",
        chunk_rows: int = 65_536,
    ) -> None:
        super().__init__()
        if method not in CORESET_METHODS:
            raise ConfigError(f"Expected method in {CORESET_METHODS}, got {method!r}")
        if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
            raise ConfigError(f"Expected chunk_rows as a positive int, got {chunk_rows!r}")
        self.method = method
        self.chunk_rows = chunk_rows
        self.coreset_ratio = coreset_ratio
        self.n_samples = n_samples
        self.projection_dim = projection_dim
        self.eps = eps
        self.random_state = random_state
        self.register_buffer("indices_", None)

    def get_config(self) -> dict[str, Any]:
        """Settings as a JSON-able dict (``random_state`` only if it is an int or None)."""
        rs = self.random_state if not isinstance(self.random_state, torch.Generator) else None
        return {"coreset_ratio": self.coreset_ratio, "n_samples": self.n_samples,
                "projection_dim": self.projection_dim, "eps": self.eps, "random_state": rs,
                "method": self.method, "chunk_rows": self.chunk_rows}

    def _n_select(self, n_rows: int) -> int:
        if self.n_samples is not None:
            n = self.n_samples
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ConfigError(f"Expected n_samples as a positive int or None, got {n!r}")
            if n > n_rows:
                raise ValueError(f"Cannot select n_samples={n} rows from an embedding of {n_rows}")
            return n
        r = self.coreset_ratio
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0.0 < r <= 1.0:
            raise ConfigError(f"Expected coreset_ratio in (0, 1], got {r!r}")
        return max(1, int(n_rows * r))

    def _projection(self, n_rows: int, x: torch.Tensor, gen: torch.Generator) -> SparseRandomProjection | None:
        """The projection for distances among ``n_rows`` rows of ``x`` (None: ``x`` itself)."""
        n_features = x.shape[1]
        dim = self.projection_dim
        if dim == "auto":
            dim = johnson_lindenstrauss_min_dim(n_rows, self.eps)
            if dim >= n_features:
                dim = None  # projecting up or to the same size only adds distortion
        elif dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
            raise ConfigError(f"Expected projection_dim as a positive int, 'auto' or None, got {dim!r}")
        if dim is None:
            return None
        # fit only reads the shape and dtype: the matrix is drawn without touching the rows
        return SparseRandomProjection(n_components=dim, random_state=gen).fit(torch.empty(1, n_features, dtype=x.dtype))

    @staticmethod
    def _prepared(x: torch.Tensor, projection: SparseRandomProjection | None) -> torch.Tensor:
        """Rows to measure distances on: ``(N, d)``, projected, centred, contiguous."""
        if projection is not None:
            x = projection.to(x.device).transform(x)
        # Distances do not change under translation, and centring keeps |x|^2 close to the
        # distance scale, so the expanded squared distance loses little to cancellation.
        return (x - x.mean(dim=0)).contiguous()

    def fit(self, embedding: torch.Tensor, progress: Progress | None = None) -> KCenterGreedy:
        """Select the coreset rows of ``embedding: (N, D)`` float; sets ``indices_``.

        Runs on the embedding's device. ``progress(done, total)`` is called as picks are
        made (per part for ``"chunked"``, about every 1 % of the picks for ``"greedy"``).
        """
        x = check_float_tensor(embedding, "embedding")
        n_rows = x.shape[0]
        if n_rows < 1 or x.shape[1] < 1:
            raise ValueError(f"Expected embedding of shape (N, D) with N, D >= 1, got {tuple(x.shape)}")
        n_select = self._n_select(n_rows)
        gen = make_generator(self.random_state)
        with torch.no_grad():
            x = x.detach()
            if x.dtype not in (torch.float32, torch.float64):
                x = x.float()
            if not bool(torch.isfinite(x).all()):
                raise ValueError("Expected a finite embedding, got NaN or infinite values")
            if self.method == "greedy" or n_rows <= self.chunk_rows:
                parts: list[torch.Tensor | None] = [None]
                projection = self._projection(n_rows, x, gen)
                quotas = [n_select]
            else:
                n_parts = min(-(-n_rows // self.chunk_rows), n_select)
                projection = self._projection(-(-n_rows // n_parts), x, gen)
                # Parts of equal size (the first n_rows % n_parts one row larger) take the
                # picks in proportion: equal shares, the remainder to the larger parts.
                parts = list(torch.tensor_split(torch.randperm(n_rows, generator=gen), n_parts))
                base, extra = divmod(n_select, n_parts)
                quotas = [base + (j < extra) for j in range(n_parts)]
            threads = torch.get_num_threads()
            picked: list[torch.Tensor] = []
            done = 0
            try:
                # Every step is a few memory-bound passes over small vectors; a second thread
                # costs more in synchronisation than it gains.
                torch.set_num_threads(1)
                for rows, quota in zip(parts, quotas):
                    part = x if rows is None else x.index_select(0, rows.to(x.device))
                    feats = self._prepared(part, projection)
                    start = int(torch.randint(part.shape[0], (1,), generator=gen).item())

                    def tick(n: int, base: int = done) -> None:
                        if progress is not None:
                            progress(base + n, n_select)

                    if feats.device.type == "cpu":
                        chosen = _greedy(feats, start, quota, tick if rows is None else None)
                    else:
                        chosen = _greedy_dense(feats, start, quota)
                    picked.append(chosen if rows is None else rows.to(chosen.device)[chosen])
                    del part, feats
                    done += quota
                    if progress is not None:
                        progress(done, n_select)
            finally:
                torch.set_num_threads(threads)
        self.indices_ = torch.cat(picked).to(embedding.device)
        return self

    def select(self, embedding: torch.Tensor) -> torch.Tensor:
        """The selected rows of ``embedding: (N, D)`` -> ``(n_selected, D)``."""
        check_is_fitted(self, "indices_")
        x = check_float_tensor(embedding, "embedding")
        if self.indices_.numel() and int(self.indices_.max()) >= x.shape[0]:
            raise ValueError(
                f"Expected the embedding that was fitted (at least {int(self.indices_.max()) + 1} "
                f"rows), got {tuple(x.shape)}"
            )
        return x.index_select(0, self.indices_.to(x.device))

    def fit_select(self, embedding: torch.Tensor) -> torch.Tensor:
        """``fit(embedding)`` then ``select(embedding)``."""
        return self.fit(embedding).select(embedding)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`select`."""
        return self.select(embedding)


def _greedy(x: torch.Tensor, start: int, n_select: int, progress: Callable[[int], None] | None = None) -> torch.Tensor:
    """Farthest-first traversal of the rows of ``x: (N, d)`` from row ``start``.

    Returns ``(n_select,)`` int64 indices in selection order; ties go to the lowest index
    (``torch.argmax`` returns the first maximum).
    """
    n_rows, dim = x.shape
    dtype = x.dtype
    sq = torch.einsum("nd,nd->n", x, x)
    # A column-major copy: y = X c as a sum of columns streams through memory, 2-3x faster
    # than row-major dot products for dims of a few hundred.
    x_cm = x.t().contiguous().t()

    indices = torch.empty(n_select, dtype=torch.long)
    centres = torch.empty(n_select, dim, dtype=dtype)  # selected rows, selection order
    centres_sq = torch.empty(n_select, dtype=dtype)
    min_d = torch.empty(n_rows, dtype=dtype)  # squared distance to the nearest centre
    assign = torch.zeros(n_rows, dtype=torch.long)  # which centre (selection order) that is
    dist = torch.empty(n_rows, dtype=dtype)
    cc = torch.empty(n_select, dtype=dtype)
    bound = torch.empty(n_rows, dtype=dtype)
    gathered = torch.empty(n_rows, dtype=dtype)
    mask = torch.empty(n_rows, dtype=torch.bool)
    dense_limit = int(_DENSE_SHARE * n_rows)
    every = max(1, n_select // 100)

    idx = start
    for t in range(n_select):
        indices[t] = idx
        c = x[idx]
        c_sq = sq[idx]
        centres[t] = c
        centres_sq[t] = c_sq
        if t == 0:
            torch.addmv(sq, x_cm, c, alpha=-2, out=min_d)
            min_d.add_(c_sq).clamp_(min=0)
        else:
            # Squared distances from the new centre to the earlier ones.
            cct = cc[:t]
            torch.addmv(centres_sq[:t], centres[:t], c, alpha=-2, out=cct)
            cct.add_(c_sq)
            # Row x can only get closer if d(a, c)^2 < 4 d(x, a)^2, a its nearest centre.
            torch.index_select(cct, 0, assign, out=gathered)
            torch.mul(min_d, 4.0 * (1.0 + _PRUNE_SLACK), out=bound)
            torch.lt(gathered, bound, out=mask)
            cand = mask.nonzero().squeeze(1)
            if cand.numel() > dense_limit:
                torch.addmv(sq, x_cm, c, alpha=-2, out=dist)
                dist.add_(c_sq).clamp_(min=0)
                torch.lt(dist, min_d, out=mask)
                assign.masked_fill_(mask, t)
                torch.minimum(min_d, dist, out=min_d)
            elif cand.numel():
                # index_select/index_copy_: advanced indexing is several times slower here.
                d_cand = torch.addmv(sq.index_select(0, cand), x.index_select(0, cand), c, alpha=-2)
                d_cand.add_(c_sq).clamp_(min=0)
                old = min_d.index_select(0, cand)
                closer = d_cand < old
                min_d.index_copy_(0, cand, torch.minimum(old, d_cand))
                assign.index_copy_(0, cand, assign.index_select(0, cand).masked_fill_(closer, t))
        # Below every distance: a selected row is never selected again, even when all the
        # remaining rows duplicate selected ones.
        min_d[idx] = -1.0
        assign[idx] = t
        if t + 1 < n_select:
            idx = int(torch.argmax(min_d))
        if progress is not None and (t + 1) % every == 0:
            progress(t + 1)
    return indices


def _greedy_dense(x: torch.Tensor, start: int, n_select: int) -> torch.Tensor:
    """The traversal of :func:`_greedy` as one dense update per step, on ``x``'s device.

    For accelerators: no pruning (a GPU updates millions of distances in microseconds, and
    the pruning's variable-size gathers would need the host), and no value goes to the host
    inside the loop, so the steps queue up without a synchronisation. Same tie rule (lowest
    index) and the same selection as :func:`_greedy` up to float rounding.
    """
    n_rows = x.shape[0]
    device = x.device
    sq = torch.einsum("nd,nd->n", x, x)
    indices = torch.empty(n_select, dtype=torch.long, device=device)
    min_d = torch.full((n_rows,), float("inf"), dtype=x.dtype, device=device)
    dist = torch.empty(n_rows, dtype=x.dtype, device=device)
    idx = torch.full((1,), start, dtype=torch.long, device=device)
    for t in range(n_select):
        indices[t : t + 1] = idx
        c = x.index_select(0, idx)[0]
        torch.addmv(sq, x, c, alpha=-2, out=dist)
        dist.add_(sq.index_select(0, idx)).clamp_(min=0)
        torch.minimum(min_d, dist, out=min_d)
        min_d.index_fill_(0, idx, -1.0)  # below every distance: never selected again
        idx = torch.argmax(min_d).view(1)
    return indices

