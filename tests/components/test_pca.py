"""PCA against scikit-learn; estimator contract; exportable transform."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeanomaly.components import PCA
from edgeanomaly.errors import ConfigError, NotFittedError

sk_decomposition = pytest.importorskip("sklearn.decomposition")


def _data(n: int = 120, d: int = 12, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # Correlated features with a clear spectrum, and an offset mean.
    scales = torch.linspace(3, 0.1, d, dtype=torch.float64)[:, None]
    mixing = torch.randn(d, d, generator=g, dtype=torch.float64) * scales
    return (torch.randn(n, d, generator=g, dtype=torch.float64) @ mixing + 5.0).to(dtype)


def _align(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Flip rows of ``a`` to the sign of the matching rows of ``b``."""
    return a * np.sign((a * b).sum(axis=1, keepdims=True))


@pytest.mark.parametrize("n_components", [1, 4, 12, 0.5, 0.9, 0.999, None])
def test_matches_sklearn(n_components: int | float | None) -> None:
    x = _data()
    ours = PCA(n_components).fit(x)
    ref = sk_decomposition.PCA(n_components, svd_solver="full").fit(x.numpy())
    assert ours.n_components_ == ref.n_components_
    np.testing.assert_allclose(_align(ours.components_.numpy(), ref.components_), ref.components_, atol=1e-10)
    np.testing.assert_allclose(ours.explained_variance_.numpy(), ref.explained_variance_, rtol=1e-10)
    np.testing.assert_allclose(ours.explained_variance_ratio_.numpy(), ref.explained_variance_ratio_,
                               rtol=1e-10)
    np.testing.assert_allclose(ours.singular_values_.numpy(), ref.singular_values_, rtol=1e-10)
    np.testing.assert_allclose(ours.mean_.numpy(), ref.mean_, rtol=1e-12)
    z, z_ref = ours.transform(x).numpy(), ref.transform(x.numpy())
    np.testing.assert_allclose(_align(z.T, z_ref.T).T, z_ref, atol=1e-9)


def test_float32_close_to_sklearn() -> None:
    x = _data(dtype=torch.float32)
    ours = PCA(5).fit(x)
    assert ours.components_.dtype == torch.float32
    ref = sk_decomposition.PCA(5, svd_solver="full").fit(x.double().numpy())
    np.testing.assert_allclose(_align(ours.components_.numpy(), ref.components_), ref.components_, atol=1e-5)
    np.testing.assert_allclose(ours.transform(x).abs().numpy(), np.abs(ref.transform(x.double().numpy())),
                               rtol=1e-4, atol=1e-3)


def test_sign_convention_is_deterministic() -> None:
    x = _data()
    comps = PCA(6).fit(x).components_
    # Largest-magnitude loading of every component is positive (scikit-learn's svd_flip).
    assert bool((comps.gather(1, comps.abs().argmax(1, keepdim=True)) > 0).all())
    assert torch.equal(comps, PCA(6).fit(x.clone()).components_)


def test_fit_returns_self_and_fit_transform() -> None:
    x = _data()
    pca = PCA(3)
    assert pca.fit(x) is pca
    assert torch.allclose(PCA(3).fit_transform(x), pca.transform(x))
    assert torch.allclose(pca(x), pca.transform(x))


def test_inverse_transform_round_trip() -> None:
    x = _data()
    full = PCA(None).fit(x)
    assert torch.allclose(full.inverse_transform(full.transform(x)), x, atol=1e-10)
    part = PCA(3).fit(x)
    recon = part.inverse_transform(part.transform(x))
    residual = float(((x - recon) ** 2).sum() / (x.shape[0] - 1))
    assert residual == pytest.approx(float(PCA(None).fit(x).explained_variance_[3:].sum()), rel=1e-8)


def test_unfitted_use_raises() -> None:
    for call in (lambda p: p.transform(_data()), lambda p: p.inverse_transform(torch.zeros(2, 2))):
        with pytest.raises(NotFittedError, match="This PCA instance is not fitted yet: call fit\\(\\) first"):
            call(PCA(2))
    assert PCA(2).n_components_ is None


def test_state_dict_round_trip_into_unfitted_instance() -> None:
    x = _data(dtype=torch.float32)
    pca = PCA(0.9).fit(x)
    state = pca.state_dict()
    assert set(state) == {"mean_", "components_", "explained_variance_", "explained_variance_ratio_",
                          "singular_values_"}
    assert all(t.is_contiguous() for t in state.values())
    fresh = PCA(0.9)
    fresh.load_state_dict(state)
    assert fresh.n_components_ == pca.n_components_
    assert torch.equal(fresh.transform(x), pca.transform(x))
    assert torch.equal(fresh.inverse_transform(pca.transform(x)), pca.inverse_transform(pca.transform(x)))


def test_transform_is_exportable() -> None:
    x = _data(dtype=torch.float32)
    pca = PCA(4).fit(x)
    exported = torch.export.export(pca, (x[:7],))
    assert torch.allclose(exported.module()(x[:7]), pca(x[:7]))


def test_bad_inputs() -> None:
    with pytest.raises(TypeError, match="torch.Tensor"):
        PCA(2).fit(_data().numpy())
    with pytest.raises(ValueError, match=r"Expected x of shape \(N, D\), got \(3, 4, 5\)"):
        PCA(2).fit(torch.zeros(3, 4, 5))
    with pytest.raises(ValueError, match="N >= 2"):
        PCA(1).fit(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="finite"):
        PCA(1).fit(torch.tensor([[0.0, 1.0], [float("nan"), 2.0]]))
    pca = PCA(2).fit(_data())
    with pytest.raises(ValueError, match=r"Expected x of shape \(N, 12\), got \(4, 3\)"):
        pca.transform(torch.zeros(4, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"Expected z of shape \(N, 2\)"):
        pca.inverse_transform(torch.zeros(4, 3, dtype=torch.float64))


@pytest.mark.parametrize("bad", [0, 13, 1.0, 0.0, -0.5, "all", True])
def test_bad_n_components(bad: object) -> None:
    with pytest.raises(ConfigError, match="n_components"):
        PCA(bad).fit(_data())  # type: ignore[arg-type]
