"""Per-location multivariate Gaussian of patch embeddings (PaDiM)."""

from __future__ import annotations

from typing import Any, Iterable

import torch

from edgeanomaly._validation import check_is_fitted
from edgeanomaly.components._buffer import DynamicBufferModule
from edgeanomaly.errors import ConfigError
from edgeanomaly.components._validate import check_float_tensor

#: Bytes of float64 covariances formed and inverted together in finalize (C=100: 64 locations).
#: Each block's inversion holds about three such blocks at once, beside the inverses.
_FINALIZE_BLOCK_BYTES = 5 * 2**20

__all__ = ["MultivariateGaussian"]

_FITTED = ("mean_", "inv_cov_")
#: Row blocks of the inverse covariance kept in exported graphs (see ``_upper_quadratic``).
UPPER_BLOCKS = 5


class MultivariateGaussian(DynamicBufferModule):
    """A Gaussian per spatial location of ``(N, C, H, W)`` embeddings; Mahalanobis scoring.

    For every location ``l`` of the ``H x W`` grid, ``fit`` estimates the mean and the
    unbiased covariance (``N - 1``) of the ``C``-dimensional embeddings of the training
    images, adds ``eps * I`` (PaDiM's regularisation; anomalib uses 0.01) and stores the
    inverse.

    Sums and outer products are accumulated in float64 batch by batch, so the training set
    never has to be in memory at once: give ``fit`` an iterable of batches, or call
    ``partial_fit`` per batch (it refreshes the fitted attributes each call, which costs one
    batched inversion; ``fit`` on an iterable inverts once). The data are shifted by the mean
    of the first batch before accumulating, which keeps the one-pass formula accurate when
    embeddings are far from zero. The running sums are not part of the state dict: an
    instance loaded from one scores, but cannot continue ``partial_fit``.

    Args:
        eps: added to the diagonal of every covariance before inversion, > 0 (or 0 if the
            covariances are known to be invertible).

    Fitted attributes (state-dict buffers, dtype of the first batch): ``mean_`` ``(C, H*W)``,
    ``inv_cov_`` ``(H*W, C, C)``; ``n_samples_seen_`` (int, not saved).

    >>> emb = torch.randn(20, 4, 3, 3, generator=torch.Generator().manual_seed(0))
    >>> gauss = MultivariateGaussian().fit(emb)
    >>> tuple(gauss.mahalanobis(emb[:2]).shape)
    (2, 3, 3)
    """

    mean_: torch.Tensor | None
    inv_cov_: torch.Tensor | None

    def __init__(self, eps: float = 0.01) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("mean_", None)
        self.register_buffer("inv_cov_", None)
        self._reset()

    def _reset(self) -> None:
        self._n = 0
        self._shape: tuple[int, int, int] | None = None  # (C, H, W)
        self._dtype: torch.dtype | None = None
        self._shift: torch.Tensor | None = None  # (L, C) float64
        self._sum: torch.Tensor | None = None  # (L, C) float64, of shifted data
        self._outer: torch.Tensor | None = None  # (L, C, C) float64, of shifted data
        self._released = False  # finalize() consumed the sums

    def get_config(self) -> dict[str, Any]:
        """Settings as a JSON-able dict."""
        return {"eps": self.eps}

    @property
    def n_samples_seen_(self) -> int | None:
        """Embeddings accumulated since the last ``fit`` (None if none, or loaded from state)."""
        return self._n or None

    def _accumulate(self, batch: torch.Tensor) -> None:
        if self._released:
            raise ValueError("finalize() ended this fit and freed its sums: call reset() before accumulating again")
        batch = check_float_tensor(batch, "embedding", "(N, C, H, W)")
        n, c, h, w = batch.shape
        if self._shape is None:
            if n < 1 or c < 1 or h < 1 or w < 1:
                raise ValueError(
                    f"Expected embedding of shape (N, C, H, W), all >= 1, got {tuple(batch.shape)}"
                )
        elif (c, h, w) != self._shape:
            raise ValueError(
                f"Expected embedding of shape (N, {', '.join(map(str, self._shape))}) like the "
                f"previous batches, got {tuple(batch.shape)}"
            )
        if n == 0:
            return
        with torch.no_grad():
            # (L, N, C): one C x C outer-product sum per location as a batched matmul.
            data = batch.detach().to(dtype=torch.float64).reshape(n, c, h * w).permute(2, 0, 1)
            if not bool(torch.isfinite(data).all()):
                raise ValueError("Expected a finite embedding, got NaN or infinite values")
            if self._shape is None:
                self._shape = (c, h, w)
                self._dtype = batch.dtype
                self._shift = data.mean(dim=1)
                self._sum = torch.zeros(h * w, c, dtype=torch.float64, device=data.device)
                self._outer = torch.zeros(h * w, c, c, dtype=torch.float64, device=data.device)
            data = data - self._shift[:, None, :]
            self._sum += data.sum(dim=1)
            self._outer.baddbmm_(data.transpose(1, 2), data)
            self._n += n

    def _finalize(self, release: bool = False) -> None:
        """``mean_`` and ``inv_cov_`` from the sums, a block of locations at a time, straight into
        the fitted dtype. With ``release`` (the end of a one-pass fit) the covariances are formed
        in place in the sums, which are then freed: the peak is the float64 sums plus the
        inverses, not four copies of them (PaDiM at 4096 locations x 100 channels: 328 MB each)."""
        n = self._n
        if n < 2:
            raise ValueError(f"Expected at least 2 embeddings to estimate a covariance, got {n}")
        eps = self.eps
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or eps < 0:
            raise ConfigError(f"Expected eps >= 0, got {eps!r}")
        c, h, w = self._shape
        locations = h * w
        with torch.no_grad():
            mean_shifted = self._sum / n  # (L, C)
            inv_cov = torch.empty(locations, c, c, dtype=self._dtype, device=self._outer.device)
            block_size = max(1, _FINALIZE_BLOCK_BYTES // (c * c * 8))
            for start in range(0, locations, block_size):
                stop = min(start + block_size, locations)
                block = self._outer[start:stop]
                cov = block if release else block.clone()
                m = mean_shifted[start:stop]
                cov.baddbmm_(m[:, :, None], m[:, None, :], alpha=-n).div_(n - 1)  # unbiased covariance
                cov.diagonal(dim1=1, dim2=2).add_(eps)
                inv, info = torch.linalg.inv_ex(cov)
                if bool((info != 0).any()):
                    raise ValueError(
                        "A covariance is singular; use eps > 0 (PaDiM uses 0.01) or more images"
                    )
                inv_cov[start:stop] = inv
                del cov, inv
            mean = (mean_shifted + self._shift).t()  # (C, L)
        # Contiguous like the buffers a state dict is loaded into: the same memory layout
        # gives the same summation order in bmm, so a reloaded model scores bit-identically.
        self.mean_ = mean.to(self._dtype).contiguous()
        self.inv_cov_ = inv_cov
        if release:  # the sums now hold covariances: nothing can be added to them any more
            self._sum = self._outer = self._shift = None
            self._released = True

    def fit(self, embedding: torch.Tensor | Iterable[torch.Tensor]) -> MultivariateGaussian:
        """Fit on ``embedding: (N, C, H, W)`` float, or an iterable of such batches.

        Starts afresh (forgets earlier ``partial_fit`` calls); returns ``self``.
        """
        self._reset()
        if isinstance(embedding, torch.Tensor):
            self._accumulate(embedding)
        else:
            try:
                batches = iter(embedding)
            except TypeError:
                raise TypeError(
                    f"Expected embedding as a torch.Tensor or an iterable of them, got "
                    f"{type(embedding).__name__}"
                ) from None
            for batch in batches:
                self._accumulate(batch)
        self._finalize(release=True)
        return self

    def reset(self) -> MultivariateGaussian:
        """Forget accumulated statistics (fitted buffers stay until the next ``finalize``)."""
        self._reset()
        return self

    def accumulate(self, embedding: torch.Tensor) -> MultivariateGaussian:
        """Add one batch ``(N, C, H, W)`` to the running sums without inverting anything yet.

        For one-pass fitting over many batches: ``reset()``, ``accumulate()`` per batch, then
        ``finalize()`` once (``partial_fit`` inverts all covariances after every batch).
        """
        self._accumulate(embedding)
        return self

    def finalize(self) -> MultivariateGaussian:
        """Compute ``mean_`` and ``inv_cov_`` from everything accumulated; returns self.

        This ends the fit: the running sums are consumed (freed), so ``accumulate`` needs a
        ``reset()`` first; ``partial_fit`` keeps them.
        """
        self._finalize(release=True)
        return self

    def partial_fit(self, embedding: torch.Tensor) -> MultivariateGaussian:
        """Add one batch ``(N, C, H, W)``; fitted attributes reflect all batches so far.

        The first call with fewer than two embeddings in total only accumulates.
        """
        self._accumulate(embedding)
        if self._n >= 2:
            self._finalize()
        return self

    def mahalanobis(self, embedding: torch.Tensor) -> torch.Tensor:
        """Mahalanobis distance map of ``embedding: (N, C, H, W)`` -> ``(N, H, W)``.

        Batched matrix products only (no loop over locations): exportable.
        """
        check_is_fitted(self, _FITTED)
        x = check_float_tensor(embedding, "embedding", "(N, C, H, W)")
        n, c, h, w = x.shape
        channels, locations = self.mean_.shape
        if c != channels or h * w != locations:
            raise ValueError(
                f"Expected embedding of shape (N, {channels}, H, W) with H*W = {locations}, "
                f"got {tuple(x.shape)}"
            )
        delta = (x.reshape(n, c, h * w) - self.mean_).permute(2, 0, 1)  # (L, N, C)
        if torch.jit.is_tracing():
            sq = self._upper_quadratic(delta)
        else:
            sq = (torch.bmm(delta, self.inv_cov_) * delta).sum(-1)  # (L, N)
        return sq.clamp(min=0).sqrt().t().reshape(n, h, w)

    def _upper_quadratic(self, delta: torch.Tensor) -> torch.Tensor:
        """``delta^T inv_cov delta`` from the upper block triangle of the symmetric inverse.

        ``delta: (L, N, C)`` -> ``(L, N)``. Used when tracing for export: the slices of
        ``inv_cov_`` below are constant, so the ONNX exporter folds them into
        ``UPPER_BLOCKS`` initialisers holding ``(k + 1) / 2k`` of the matrix (60% for k = 5)
        instead of all of it; the graph and every artifact made from it shrink by 40%,
        for PaDiM (one 100 x 100 inverse per location) the bulk of the bundle. Row block
        ``[a, b)`` contributes ``delta_ab^T (S_ab,ab delta_ab + 2 S_ab,b: delta_b:)``.
        Same value as the full product up to float rounding (1e-7 relative).
        """
        c = int(self.inv_cov_.shape[-1])  # type: ignore[union-attr]  # a plain int while tracing
        edges = sorted({round(i * c / UPPER_BLOCKS) for i in range(UPPER_BLOCKS + 1)})
        total: torch.Tensor | None = None
        for a, b in zip(edges[:-1], edges[1:]):
            rows = self.inv_cov_[:, a:b, a:]  # type: ignore[index]
            rows = torch.cat([rows[:, :, : b - a], 2.0 * rows[:, :, b - a :]], dim=2)
            term = (torch.bmm(delta[..., a:b], rows) * delta[..., a:]).sum(-1)
            total = term if total is None else total + term
        assert total is not None  # c >= 1
        return total

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`mahalanobis`."""
        return self.mahalanobis(embedding)
