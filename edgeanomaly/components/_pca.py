"""Principal component analysis in torch (fit by SVD, transform exportable)."""

from __future__ import annotations

from typing import Any

import torch

from edgeanomaly._validation import check_is_fitted
from edgeanomaly.components._buffer import DynamicBufferModule
from edgeanomaly.errors import ConfigError
from edgeanomaly.components._validate import check_float_tensor, fit_matrix

__all__ = ["PCA"]

_FITTED = ("mean_", "components_", "explained_variance_", "explained_variance_ratio_", "singular_values_")


class PCA(DynamicBufferModule):
    """Linear dimensionality reduction onto the directions of largest variance.

    Args:
        n_components: an int keeps that many components (at most ``min(N, D)``); a float in
            (0, 1) keeps the fewest components whose explained variance ratio reaches it
            (as scikit-learn: the first ``k`` with cumulative ratio ``> n_components``, or
            ``== `` at the last component); ``None`` keeps ``min(N, D)``.

    ``fit`` centres the data and takes a thin SVD in float64; signs follow scikit-learn's
    convention (the largest-magnitude loading of each component is positive), so the same
    data gives the same components on every run.

    Fitted attributes (state-dict buffers, dtype of the fitted data):
        ``mean_`` ``(D,)``, ``components_`` ``(k, D)``, ``explained_variance_`` ``(k,)``,
        ``explained_variance_ratio_`` ``(k,)``, ``singular_values_`` ``(k,)``;
        ``n_components_`` (int, derived).

    >>> x = torch.randn(200, 10, generator=torch.Generator().manual_seed(0))
    >>> pca = PCA(n_components=3).fit(x)
    >>> tuple(pca.transform(x).shape), pca.n_components_
    ((200, 3), 3)
    """

    mean_: torch.Tensor | None
    components_: torch.Tensor | None
    explained_variance_: torch.Tensor | None
    explained_variance_ratio_: torch.Tensor | None
    singular_values_: torch.Tensor | None

    def __init__(self, n_components: int | float | None = None) -> None:
        super().__init__()
        self.n_components = n_components
        for name in _FITTED:
            self.register_buffer(name, None)

    def get_config(self) -> dict[str, Any]:
        """Settings as a JSON-able dict."""
        return {"n_components": self.n_components}

    @property
    def n_components_(self) -> int | None:
        """Number of kept components (None before ``fit``)."""
        return None if self.components_ is None else int(self.components_.shape[0])

    def _n_keep(self, ratio_cumsum: torch.Tensor, max_components: int) -> int:
        n = self.n_components
        if n is None:
            return max_components
        if isinstance(n, bool) or not isinstance(n, (int, float)):
            raise ConfigError(f"Expected n_components as an int, a float in (0, 1) or None, got {n!r}")
        if isinstance(n, int):
            if not 1 <= n <= max_components:
                raise ConfigError(
                    f"Expected n_components in [1, min(N, D)] = [1, {max_components}], got {n}"
                )
            return n
        if not 0.0 < n < 1.0:
            raise ConfigError(f"Expected a float n_components in (0, 1), got {n}")
        keep = int(torch.searchsorted(ratio_cumsum, torch.tensor([n], dtype=ratio_cumsum.dtype, device=ratio_cumsum.device),
                                      right=True).item()) + 1
        return min(keep, max_components)

    def fit(self, x: torch.Tensor) -> PCA:
        """Fit on ``x: (N, D)`` float, ``N >= 2``; returns ``self``."""
        data = fit_matrix(x)
        n_samples, n_features = data.shape
        with torch.no_grad():
            mean = data.mean(dim=0)
            u, s, vt = torch.linalg.svd(data - mean, full_matrices=False)
            # scikit-learn's svd_flip (v-based): largest |loading| of each component positive.
            pivot = vt.abs().argmax(dim=1)
            signs = torch.sign(vt.gather(1, pivot[:, None])).squeeze(1)
            signs[signs == 0] = 1.0
            vt = vt * signs[:, None]
            variance = s**2 / (n_samples - 1)
            total = variance.sum()
            ratio = variance / total if total > 0 else torch.zeros_like(variance)
            k = self._n_keep(torch.cumsum(ratio, 0), min(n_samples, n_features))
        out = {"dtype": x.dtype, "device": x.device}
        self.mean_ = mean.to(**out)
        self.components_ = vt[:k].contiguous().to(**out)
        self.explained_variance_ = variance[:k].to(**out)
        self.explained_variance_ratio_ = ratio[:k].to(**out)
        self.singular_values_ = s[:k].to(**out)
        return self

    def _check_features(self, x: torch.Tensor, width: int, name: str) -> None:
        if x.shape[1] != width:
            raise ValueError(f"Expected {name} of shape (N, {width}), got {tuple(x.shape)}")

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """Project ``x: (N, D)`` -> ``(N, n_components_)``; pure tensor ops (exportable)."""
        check_is_fitted(self, _FITTED)
        x = check_float_tensor(x)
        self._check_features(x, self.components_.shape[1], "x")
        return (x - self.mean_) @ self.components_.t()

    def inverse_transform(self, z: torch.Tensor) -> torch.Tensor:
        """Map ``z: (N, n_components_)`` back to ``(N, D)`` (exact if all components kept)."""
        check_is_fitted(self, _FITTED)
        z = check_float_tensor(z, "z")
        self._check_features(z, self.components_.shape[0], "z")
        return z @ self.components_ + self.mean_

    def fit_transform(self, x: torch.Tensor) -> torch.Tensor:
        """``fit(x)`` then ``transform(x)``."""
        return self.fit(x).transform(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`transform`."""
        return self.transform(x)
