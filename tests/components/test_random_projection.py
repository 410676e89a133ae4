"""SparseRandomProjection: Johnson-Lindenstrauss dimension, matrix distribution, contract."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from edgeanomaly.components import SparseRandomProjection
from edgeanomaly.components._random_projection import johnson_lindenstrauss_min_dim, make_generator
from edgeanomaly.errors import ConfigError, NotFittedError


def _data(n: int = 50, d: int = 400, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("n_samples", [1, 2, 100, 32768, 10**6])
@pytest.mark.parametrize("eps", [0.05, 0.1, 0.5, 0.9, 0.99])
def test_jl_min_dim_matches_sklearn(n_samples: int, eps: float) -> None:
    sk = pytest.importorskip("sklearn.random_projection")
    expected = int(sk.johnson_lindenstrauss_min_dim(n_samples, eps=eps))
    assert johnson_lindenstrauss_min_dim(n_samples, eps) == expected


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 2.0])
def test_jl_min_dim_rejects_bad_eps(bad: float) -> None:
    with pytest.raises(ConfigError, match="eps"):
        johnson_lindenstrauss_min_dim(10, bad)


def test_fit_returns_self_and_auto_dimension() -> None:
    x = _data(100, 2000)
    srp = SparseRandomProjection(eps=0.5, random_state=0)
    assert srp.fit(x) is srp
    assert srp.n_components_ == johnson_lindenstrauss_min_dim(100, 0.5)
    assert srp.components_.shape == (srp.n_components_, 2000)
    assert srp.transform(x).shape == (100, srp.n_components_)


def test_auto_dimension_larger_than_input_is_an_error() -> None:
    with pytest.raises(ConfigError, match="larger eps or set n_components"):
        SparseRandomProjection(eps=0.1, random_state=0).fit(_data(100, 50))


def test_unfitted_use_raises() -> None:
    with pytest.raises(NotFittedError, match="This SparseRandomProjection instance is not fitted yet"):
        SparseRandomProjection(10).transform(_data())
    assert SparseRandomProjection().n_components_ is None


def test_density_and_values() -> None:
    d, k = 400, 200
    srp = SparseRandomProjection(n_components=k, random_state=0).fit(_data(10, d))
    m = srp.components_.double()
    density = 1 / math.sqrt(d)
    assert abs(srp.density_ - density) < 0.005  # binomial sd ~ 0.0008
    nonzero = m[m != 0]
    scale = math.sqrt(1 / density) / math.sqrt(k)
    assert torch.allclose(nonzero.abs(), torch.full_like(nonzero, scale), rtol=1e-6)
    assert abs(float((nonzero > 0).double().mean()) - 0.5) < 0.03
    # Squared column norms are 1 in expectation, so squared lengths are preserved on average.
    assert abs(float((m**2).sum(0).mean()) - 1.0) < 0.05


def test_explicit_density_one_is_dense_rademacher() -> None:
    srp = SparseRandomProjection(n_components=16, density=1.0, random_state=0).fit(_data(5, 30))
    assert torch.allclose(srp.components_.abs(), torch.full((16, 30), 0.25))


def test_distances_preserved_within_eps() -> None:
    x = _data(60, 3000, seed=1).double()
    eps = 0.3
    srp = SparseRandomProjection(eps=eps, random_state=0).fit(x)
    y = srp.transform(x)
    iu = torch.triu_indices(60, 60, 1)
    ratio = (torch.cdist(y, y) ** 2)[iu[0], iu[1]] / (torch.cdist(x, x) ** 2)[iu[0], iu[1]]
    assert float(ratio.min()) > 1 - eps and float(ratio.max()) < 1 + eps
    assert abs(float(ratio.mean()) - 1) < 0.05


def test_determinism_under_random_state() -> None:
    x = _data()
    a = SparseRandomProjection(32, random_state=3).fit(x).components_
    b = SparseRandomProjection(32, random_state=3).fit(x).components_
    c = SparseRandomProjection(32, random_state=4).fit(x).components_
    assert torch.equal(a, b) and not torch.equal(a, c)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(SparseRandomProjection(32, random_state=g1).fit(x).components_,
                       SparseRandomProjection(32, random_state=g2).fit(x).components_)


def test_global_rng_untouched() -> None:
    before = torch.get_rng_state()
    SparseRandomProjection(32, random_state=None).fit(_data())
    SparseRandomProjection(32, random_state=1).fit(_data())
    assert torch.equal(before, torch.get_rng_state())


def test_state_dict_round_trip_into_unfitted_instance() -> None:
    x = _data()
    srp = SparseRandomProjection(24, random_state=0).fit(x)
    assert srp.components_.is_contiguous()
    fresh = SparseRandomProjection(24)
    fresh.load_state_dict(srp.state_dict())
    assert torch.equal(fresh.transform(x), srp.transform(x))
    assert fresh.n_components_ == 24


def test_keeps_input_dtype() -> None:
    x = _data().double()
    srp = SparseRandomProjection(8, random_state=0).fit(x)
    assert srp.components_.dtype == torch.float64 and srp(x).dtype == torch.float64


def test_bad_inputs() -> None:
    srp = SparseRandomProjection(8, random_state=0)
    with pytest.raises(TypeError, match="torch.Tensor"):
        srp.fit(np.zeros((4, 10), np.float32))
    with pytest.raises(TypeError, match="floating dtype"):
        srp.fit(torch.zeros(4, 10, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"Expected x of shape \(N, D\), got \(10,\)"):
        srp.fit(torch.zeros(10))
    srp.fit(_data(5, 10))
    with pytest.raises(ValueError, match=r"Expected x of shape \(N, 10\), got \(5, 11\)"):
        srp.transform(torch.zeros(5, 11))


@pytest.mark.parametrize(
    "kwargs",
    [{"n_components": 0}, {"n_components": "many"}, {"density": 0.0}, {"density": 1.5},
     {"n_components": "auto", "eps": 1.5}, {"n_components": 4, "random_state": "seed"}],
)
def test_bad_settings(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        SparseRandomProjection(**kwargs).fit(_data(5, 10))


def test_make_generator_types() -> None:
    g = torch.Generator()
    assert make_generator(g) is g
    with pytest.raises(ConfigError, match="random_state"):
        make_generator(True)
    with pytest.raises(ConfigError, match="random_state"):
        make_generator(1.5)  # type: ignore[arg-type]
