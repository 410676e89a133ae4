"""Sparse random projection (Achlioptas 2003; Li, Hastie and Church 2006) in torch."""

from __future__ import annotations

import math
from typing import Any, Union

import torch

from edgeanomaly._validation import check_is_fitted
from edgeanomaly.components._buffer import DynamicBufferModule
from edgeanomaly.errors import ConfigError
from edgeanomaly.components._validate import check_float_tensor

__all__ = ["SparseRandomProjection", "johnson_lindenstrauss_min_dim", "make_generator"]

RandomState = Union[int, torch.Generator, None]


def make_generator(random_state: RandomState) -> torch.Generator:
    """A CPU ``torch.Generator`` for ``random_state``; the global torch RNG is never used.

    An int seeds a new generator (same int, same draws); a generator is used as is (its state
    advances, as with scikit-learn's ``RandomState`` instances); ``None`` seeds a new generator
    from the operating system.

    >>> a = torch.rand(2, generator=make_generator(0)); b = torch.rand(2, generator=make_generator(0))
    >>> bool(torch.equal(a, b))
    True
    """
    if isinstance(random_state, torch.Generator):
        return random_state
    if random_state is None:
        gen = torch.Generator()
        gen.seed()
        return gen
    if isinstance(random_state, bool) or not isinstance(random_state, int):
        raise ConfigError(
            f"Expected random_state as an int, a torch.Generator or None, got {random_state!r}"
        )
    if not 0 <= random_state < 2**63:
        raise ConfigError(f"Expected random_state in [0, 2**63), got {random_state}")
    return torch.Generator().manual_seed(random_state)


def johnson_lindenstrauss_min_dim(n_samples: int, eps: float) -> int:
    """Smallest safe projection dimension ``floor(4 ln(n) / (eps^2/2 - eps^3/3))``.

    With it, a random projection keeps every pairwise squared distance of ``n_samples`` points
    within a factor ``(1 +- eps)`` with good probability (Dasgupta and Gupta's bound, the one
    ``sklearn.random_projection.johnson_lindenstrauss_min_dim`` uses).

    >>> johnson_lindenstrauss_min_dim(32768, eps=0.9)
    256
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ConfigError(f"Expected n_samples as a positive int, got {n_samples!r}")
    if not 0.0 < eps < 1.0:
        raise ConfigError(f"Expected eps in (0, 1), got {eps!r}")
    denominator = eps**2 / 2 - eps**3 / 3
    return int(4 * math.log(n_samples) / denominator)


class SparseRandomProjection(DynamicBufferModule):
    """Project ``(N, D)`` data to ``n_components`` dimensions with a sparse random matrix.

    Each entry of the ``(n_components, D)`` matrix is ``0`` with probability ``1 - density``
    and ``+-1 / sqrt(density * n_components)`` otherwise (signs equally likely), so squared
    distances are preserved in expectation. The matrix is stored dense: at the sizes anomaly
    models use (hundreds of dimensions) a dense matmul is faster than a sparse one on CPU and
    exports to any graph format.

    Args:
        n_components: target dimension, or ``"auto"``: the Johnson-Lindenstrauss dimension
            for the number of samples given to ``fit`` and ``eps``. If that exceeds the input
            dimension, ``fit`` raises :class:`~edgeanomaly.errors.ConfigError` (reducing is
            then pointless: lower the accuracy with a larger ``eps`` or give a number).
        eps: distortion for ``"auto"``, in (0, 1).
        density: share of non-zero entries, or ``"auto"`` for ``1 / sqrt(D)`` (Li et al.).
        random_state: int, ``torch.Generator`` or None; the global RNG is never touched.

    Fitted attributes (state-dict buffers): ``components_`` ``(n_components, D)``.

    >>> x = torch.randn(100, 50, generator=torch.Generator().manual_seed(0))
    >>> srp = SparseRandomProjection(n_components=10, random_state=0).fit(x)
    >>> tuple(srp.transform(x).shape)
    (100, 10)
    """

    components_: torch.Tensor | None

    def __init__(
        self,
        n_components: int | str = "auto",
        eps: float = 0.1,
        density: float | str = "auto",
        random_state: RandomState = None,
    ) -> None:
        super().__init__()
        self.n_components = n_components
        self.eps = eps
        self.density = density
        self.random_state = random_state
        self.register_buffer("components_", None)

    def get_config(self) -> dict[str, Any]:
        """Settings as a JSON-able dict (``random_state`` only if it is an int or None)."""
        rs = self.random_state if not isinstance(self.random_state, torch.Generator) else None
        return {"n_components": self.n_components, "eps": self.eps, "density": self.density,
                "random_state": rs}

    def _target_dim(self, n_samples: int, n_features: int) -> int:
        if self.n_components == "auto":
            dim = johnson_lindenstrauss_min_dim(n_samples, self.eps)
            if dim > n_features:
                raise ConfigError(
                    f"eps={self.eps} and n_samples={n_samples} lead to a target dimension of "
                    f"{dim}, more than the {n_features} input features; choose a larger eps "
                    "or set n_components explicitly"
                )
            return dim
        n = self.n_components
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"Expected n_components as a positive int or 'auto', got {n!r}")
        return n

    def _density(self, n_features: int) -> float:
        if self.density == "auto":
            return 1.0 / math.sqrt(n_features)
        d = self.density
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0.0 < d <= 1.0:
            raise ConfigError(f"Expected density in (0, 1] or 'auto', got {d!r}")
        return float(d)

    def fit(self, x: torch.Tensor) -> SparseRandomProjection:
        """Draw the projection matrix for data like ``x: (N, D)``; only the shape is used."""
        x = check_float_tensor(x)
        n_samples, n_features = x.shape
        if n_samples < 1 or n_features < 1:
            raise ValueError(f"Expected x of shape (N, D) with N, D >= 1, got {tuple(x.shape)}")
        k = self._target_dim(n_samples, n_features)
        density = self._density(n_features)
        gen = make_generator(self.random_state)
        nonzero = torch.rand(k, n_features, generator=gen, dtype=torch.float64) < density
        positive = torch.rand(k, n_features, generator=gen, dtype=torch.float64) < 0.5
        scale = 1.0 / math.sqrt(density * k)
        values = torch.where(positive, scale, -scale) * nonzero
        self.components_ = values.to(dtype=x.dtype, device=x.device)
        return self

    @property
    def n_components_(self) -> int | None:
        """Target dimension chosen by ``fit`` (None before)."""
        return None if self.components_ is None else int(self.components_.shape[0])

    @property
    def density_(self) -> float | None:
        """Share of non-zero entries of the drawn matrix (None before ``fit``)."""
        if self.components_ is None:
            return None
        return float((self.components_ != 0).double().mean())

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """Project ``x: (N, D)`` to ``(N, n_components_)`` (pure matmul, exportable)."""
        check_is_fitted(self, "components_")
        x = check_float_tensor(x)
        if x.shape[1] != self.components_.shape[1]:
            raise ValueError(
                f"Expected x of shape (N, {self.components_.shape[1]}), got {tuple(x.shape)}"
            )
        return x @ self.components_.t().to(x.dtype)

    def fit_transform(self, x: torch.Tensor) -> torch.Tensor:
        """``fit(x)`` then ``transform(x)``."""
        return self.fit(x).transform(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`transform`."""
        return self.transform(x)
