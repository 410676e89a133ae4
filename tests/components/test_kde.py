"""GaussianKDE against scipy.stats.gaussian_kde; estimator contract; exportable forward."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeanomaly.components import GaussianKDE
from edgeanomaly.errors import NotFittedError

stats = pytest.importorskip("scipy.stats")


def _data(n: int = 150, d: int = 3, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mixing = torch.randn(d, d, generator=g, dtype=torch.float64) + 2 * torch.eye(d, dtype=torch.float64)
    return (torch.randn(n, d, generator=g, dtype=torch.float64) @ mixing + 3.0).to(dtype)


@pytest.mark.parametrize(("n", "d"), [(50, 1), (150, 3), (400, 8)])
def test_matches_scipy(n: int, d: int) -> None:
    x = _data(n, d)
    queries = torch.cat([x[:20], _data(30, d, seed=1) * 1.5])
    kde = GaussianKDE().fit(x)
    ref = stats.gaussian_kde(x.numpy().T)
    np.testing.assert_allclose(kde(queries).numpy(), ref(queries.numpy().T), rtol=1e-9)
    np.testing.assert_allclose(kde.score_samples(queries).numpy(), ref.logpdf(queries.numpy().T), rtol=1e-9)
    assert kde.factor_ == pytest.approx(ref.factor)
    assert float(kde.norm_) == pytest.approx(1 / (n * np.sqrt(np.linalg.det(2 * np.pi * ref.covariance))))


def test_float32_close_to_scipy() -> None:
    x = _data(200, 4, dtype=torch.float32)
    kde = GaussianKDE().fit(x)
    ref = stats.gaussian_kde(x.double().numpy().T)
    assert kde.dataset_.dtype == torch.float32
    np.testing.assert_allclose(kde(x[:30]).numpy(), ref(x[:30].double().numpy().T), rtol=1e-4)


def test_log_density_stays_finite_where_density_underflows() -> None:
    kde = GaussianKDE().fit(_data())
    far = torch.full((1, 3), 1e3, dtype=torch.float64)
    assert float(kde(far)) == 0.0
    assert np.isfinite(float(kde.score_samples(far)))


def test_fit_returns_self_and_evaluate_alias() -> None:
    x = _data()
    kde = GaussianKDE()
    assert kde.fit(x) is kde
    assert torch.equal(kde.evaluate(x[:5]), kde(x[:5]))


def test_deterministic() -> None:
    x = _data()
    assert torch.equal(GaussianKDE().fit(x)(x[:10]), GaussianKDE().fit(x.clone())(x[:10]))


def test_unfitted_use_raises() -> None:
    with pytest.raises(NotFittedError, match="This GaussianKDE instance is not fitted yet"):
        GaussianKDE()(_data())
    with pytest.raises(NotFittedError, match="GaussianKDE"):
        GaussianKDE().score_samples(_data())
    assert GaussianKDE().norm_ is None and GaussianKDE().factor_ is None


def test_state_dict_round_trip_into_unfitted_instance() -> None:
    x = _data(dtype=torch.float32)
    kde = GaussianKDE().fit(x)
    assert all(t.is_contiguous() for t in kde.state_dict().values())
    fresh = GaussianKDE()
    fresh.load_state_dict(kde.state_dict())
    assert set(kde.state_dict()) == {"mean_", "bw_transform_", "dataset_", "log_norm_"}
    assert torch.equal(fresh(x[:10]), kde(x[:10]))
    assert torch.equal(fresh.score_samples(x[:10]), kde.score_samples(x[:10]))


def test_forward_is_exportable() -> None:
    x = _data(dtype=torch.float32)
    kde = GaussianKDE().fit(x)
    exported = torch.export.export(kde, (x[:6],))
    assert torch.allclose(exported.module()(x[:6]), kde(x[:6]))


def test_bad_inputs() -> None:
    with pytest.raises(TypeError, match="torch.Tensor"):
        GaussianKDE().fit(_data().numpy())
    with pytest.raises(TypeError, match="floating"):
        GaussianKDE().fit(torch.ones(5, 2, dtype=torch.int32))
    with pytest.raises(ValueError, match=r"Expected x of shape \(N, D\), got \(5,\)"):
        GaussianKDE().fit(torch.ones(5))
    with pytest.raises(ValueError, match="N >= 2"):
        GaussianKDE().fit(torch.ones(1, 2))
    collinear = _data(50, 1).repeat(1, 2)
    with pytest.raises(ValueError, match="singular"):
        GaussianKDE().fit(collinear)
    kde = GaussianKDE().fit(_data())
    with pytest.raises(ValueError, match=r"Expected x of shape \(N, 3\), got \(2, 4\)"):
        kde(torch.zeros(2, 4, dtype=torch.float64))


@pytest.mark.parametrize("noise", [0.0, 1e-9, 1e-7])
def test_collinear_features_are_refused_on_every_cpu(noise: float) -> None:
    # Exactly collinear columns give a covariance that is singular only up to rounding:
    # whether its Cholesky factorisation fails depended on the CPU's matrix kernels (it
    # succeeded on an Intel AMX machine). Collinear up to 1e-7 of the spread (a condition
    # number near 1e15) is as singular: its factorisation succeeds everywhere, and is noise.
    x = _data(50, 1).repeat(1, 2)
    x[:, 1] += noise * torch.randn(50, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    with pytest.raises(ValueError, match="singular"):
        GaussianKDE().fit(x)


def test_strongly_correlated_features_are_still_fitted() -> None:
    x = _data(50, 1).repeat(1, 2)
    x[:, 1] += 1e-3 * torch.randn(50, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    kde = GaussianKDE().fit(x)
    assert torch.isfinite(kde.score_samples(x)).all()


@pytest.mark.parametrize(("n", "d"), [(150, 3), (20, 40)])
def test_spherical_matches_sklearn_kernel_density(n: int, d: int) -> None:
    # The isotropic kernel of scikit-learn with bandwidth f * sqrt(mean variance); it also
    # works with fewer samples than dimensions, where the full covariance is singular.
    from sklearn.neighbors import KernelDensity

    x = _data(n, d)
    queries = torch.cat([x[:10], _data(15, d, seed=1) * 1.5])
    kde = GaussianKDE(covariance="spherical").fit(x)
    bandwidth = kde.factor_ * float(x.var(dim=0, unbiased=True).mean().sqrt())
    ref = KernelDensity(kernel="gaussian", bandwidth=bandwidth).fit(x.numpy())
    np.testing.assert_allclose(kde.score_samples(queries).numpy(), ref.score_samples(queries.numpy()), rtol=1e-9)
    assert kde.get_config() == {"covariance": "spherical"}


def test_unknown_covariance_is_a_clear_error() -> None:
    from edgeanomaly.errors import ConfigError

    with pytest.raises(ConfigError, match="Expected covariance in \\['full', 'spherical'\\], got 'diag'"):
        GaussianKDE(covariance="diag")
