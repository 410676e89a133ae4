"""Gaussian kernel density estimation with Scott's bandwidth (as ``scipy.stats.gaussian_kde``).

Also with a spherical kernel (``covariance="spherical"``), the estimate of
``sklearn.neighbors.KernelDensity`` with Scott's factor times the data's mean standard deviation.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from edgeanomaly._validation import check_is_fitted
from edgeanomaly.components._buffer import DynamicBufferModule
from edgeanomaly.components._validate import check_float_tensor, fit_matrix
from edgeanomaly.errors import ConfigError

__all__ = ["GaussianKDE"]

_FITTED = ("mean_", "bw_transform_", "dataset_", "log_norm_")
_COVARIANCES = ("full", "spherical")


class GaussianKDE(DynamicBufferModule):
    """Gaussian kernel density of ``N`` points in ``D`` dimensions.

    The kernel covariance is the data covariance (unbiased) times ``f^2`` with Scott's factor
    ``f = N ** (-1 / (D + 4))``: the same estimate as ``scipy.stats.gaussian_kde(x.T)``.
    ``fit`` stores the data whitened by the kernel covariance (``dataset_ = (x - mean_) @
    bw_transform_`` with ``bw_transform_ @ bw_transform_.T`` its inverse), so evaluation is
    one matrix product and an exponential: pure tensor ops, exportable.

    With ``covariance="spherical"`` the kernel covariance is ``f^2 * mean(diag(cov)) * I``
    instead: distances keep the data's own geometry, so directions of small variance (the
    last principal components of a few dozen images, mostly noise) are not blown up to the
    weight of the leading ones, as whitening by the full covariance does. This is the
    isotropic kernel of ``sklearn.neighbors.KernelDensity`` with bandwidth
    ``f * sqrt(mean(diag(cov)))``, and it needs no invertible covariance.

    ``forward(x)`` returns the density; ``score_samples(x)`` its logarithm, computed with a
    log-sum-exp, which stays finite where the density underflows (prefer it for scoring).

    Fitted attributes (state-dict buffers, dtype of the fitted data): ``mean_`` ``(D,)``,
    ``bw_transform_`` ``(D, D)``, ``dataset_`` ``(N, D)``, ``log_norm_`` ``()`` (log of the
    normalisation ``1 / (N sqrt(det(2 pi cov)))``); ``norm_`` is derived.

    >>> x = torch.randn(100, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> kde = GaussianKDE().fit(x)
    >>> tuple(kde(x[:5]).shape)
    (5,)
    """

    mean_: torch.Tensor | None
    bw_transform_: torch.Tensor | None
    dataset_: torch.Tensor | None
    log_norm_: torch.Tensor | None

    def __init__(self, covariance: str = "full") -> None:
        super().__init__()
        if covariance not in _COVARIANCES:
            raise ConfigError(f"Expected covariance in {list(_COVARIANCES)}, got {covariance!r}")
        self.covariance = covariance
        for name in _FITTED:
            self.register_buffer(name, None)

    def get_config(self) -> dict[str, Any]:
        """Settings as a JSON-able dict."""
        return {"covariance": self.covariance}

    @property
    def norm_(self) -> torch.Tensor | None:
        """``exp(log_norm_)`` (None before ``fit``)."""
        return None if self.log_norm_ is None else self.log_norm_.exp()

    @property
    def factor_(self) -> float | None:
        """Scott's bandwidth factor used by ``fit`` (None before)."""
        if self.dataset_ is None:
            return None
        n, d = self.dataset_.shape
        return float(n ** (-1.0 / (d + 4)))

    def fit(self, x: torch.Tensor) -> GaussianKDE:
        """Fit on ``x: (N, D)`` float; ``covariance="full"`` needs ``N > D`` (an invertible covariance)."""
        data = fit_matrix(x)
        n, d = data.shape
        with torch.no_grad():
            mean = data.mean(dim=0)
            centred = data - mean
            cov = centred.t() @ centred / (n - 1)
            factor = n ** (-1.0 / (d + 4))
            kernel_cov = cov * factor**2
            if self.covariance == "spherical":
                kernel_cov = torch.eye(d, dtype=cov.dtype, device=cov.device) * (torch.trace(kernel_cov) / d)
            chol_cov, info = torch.linalg.cholesky_ex(kernel_cov)
            if int(info) != 0 or _numerically_singular(torch.diagonal(chol_cov)):
                raise ValueError(
                    f"The covariance of x ({n} samples, {d} dimensions) is singular; a kernel "
                    "density needs more samples than dimensions and no constant or collinear "
                    "features (reduce the dimension first, e.g. with PCA)"
                )
            # bw @ bw.T = inverse(kernel_cov), from the Cholesky factor L of kernel_cov:
            # inverse = L^-T L^-1, so bw = L^-T.
            eye = torch.eye(d, dtype=torch.float64, device=chol_cov.device)
            bw = torch.linalg.solve_triangular(chol_cov, eye, upper=False).t()
            log_det = 2.0 * torch.log(torch.diagonal(chol_cov)).sum()
            log_norm = -math.log(n) - 0.5 * (d * math.log(2 * math.pi) + log_det)
        out = {"dtype": x.dtype, "device": x.device}
        self.mean_ = mean.to(**out)
        self.bw_transform_ = bw.contiguous().to(**out)
        self.dataset_ = (centred @ bw).to(**out)
        self.log_norm_ = log_norm.to(**out)
        return self

    def _half_sq_dist(self, x: torch.Tensor) -> torch.Tensor:
        check_is_fitted(self, _FITTED)
        x = check_float_tensor(x)
        if x.shape[1] != self.dataset_.shape[1]:
            raise ValueError(f"Expected x of shape (N, {self.dataset_.shape[1]}), got {tuple(x.shape)}")
        z = (x - self.mean_) @ self.bw_transform_
        # Expanded squared distance: a (M, N) matrix instead of a (M, N, D) difference tensor.
        data = self.dataset_
        sq = (z * z).sum(1, keepdim=True) + (data * data).sum(1) - 2.0 * z @ data.t()
        return -0.5 * sq.clamp(min=0)

    def score_samples(self, x: torch.Tensor) -> torch.Tensor:
        """Log density at ``x: (M, D)`` -> ``(M,)``."""
        # log-sum-exp written out: OpenVINO's ONNX frontend (2026.4) turns the exported
        # ReduceLogSumExp(axes=[1], keepdims=0) into a scalar, losing the batch dimension.
        e = self._half_sq_dist(x)
        peak = e.amax(dim=1, keepdim=True)
        return (peak.squeeze(1) + torch.log(torch.exp(e - peak).sum(dim=1))) + self.log_norm_

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Density at ``x: (M, D)`` -> ``(M,)`` (``scipy.stats.gaussian_kde.evaluate``)."""
        return self.score_samples(x).exp()

    def evaluate(self, x: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`forward`."""
        return self.forward(x)


def _numerically_singular(chol_diagonal: torch.Tensor) -> bool:
    """Whether a covariance whose Cholesky factor has this diagonal is singular to working
    precision: the squared ratio of the smallest to the largest pivot (a lower bound on the
    reciprocal condition number's order) below ``D * 1000`` float64 epsilons. Exactly collinear
    features give a covariance whose factorisation succeeds or fails by rounding alone, which
    differs from one CPU's matrix kernels to another's; this decides the same on all of them."""
    d = chol_diagonal.abs()
    if not bool(torch.isfinite(d).all()) or float(d.max()) == 0.0:
        return True
    ratio = float(d.min() / d.max()) ** 2
    return ratio < len(d) * 1000 * torch.finfo(torch.float64).eps
