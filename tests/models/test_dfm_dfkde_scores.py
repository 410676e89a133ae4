"""DFM's and DFKDE's scores against scikit-learn oracles (PCA, KernelDensity) on their own embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeanomaly.models import create_model

decomposition = pytest.importorskip("sklearn.decomposition")
neighbors = pytest.importorskip("sklearn.neighbors")


def _images(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def train() -> list[torch.Tensor]:
    return [_images(6, 1), _images(6, 2)]


def test_dfm_fre_score_and_map_match_sklearn_pca(train) -> None:
    m = create_model("dfm", backbone="resnet18", pretrained=False, random_state=0).fit(train)
    x = _images(3, 7)
    with torch.no_grad():
        emb_train = torch.cat([m.embed(b) for b in train]).double().numpy()
        emb = m.embed(x).double().numpy()
    pca = decomposition.PCA(n_components=0.97, svd_solver="full").fit(emb_train)
    residual = (emb - pca.inverse_transform(pca.transform(emb))) ** 2
    out = m.predict(x)
    np.testing.assert_allclose(out["pred_score"].numpy(), residual.sum(axis=1), rtol=1e-3)
    c, h = m.feature_extractor.channels[m.layers[0]], 64 // m.max_stride
    fre_map = residual.reshape(3, c, h, h).sum(axis=1)
    # the map is the per-location FRE, bilinearly upsampled: its mean over the image is close
    # to the mean per-location FRE, and its largest value sits at the largest location.
    np.testing.assert_allclose(out["anomaly_map"][:, 0].numpy().mean(axis=(1, 2)), fre_map.mean(axis=(1, 2)), rtol=0.2)


def test_dfkde_score_matches_sklearn_kernel_density_plus_residual(train) -> None:
    m = create_model("dfkde", backbone="resnet18", pretrained=False, random_state=0, n_pca_components=4).fit(train)
    x = _images(3, 7)
    with torch.no_grad():
        emb_train = torch.cat([m.embed(b) for b in train]).double().numpy()
        emb = m.embed(x).double().numpy()
    pca = decomposition.PCA(n_components=4, svd_solver="full").fit(emb_train)
    z_train, z = pca.transform(emb_train), pca.transform(emb)
    scale = np.linalg.norm(z_train, axis=1).max()
    z_train, z = z_train / scale, z / scale
    n, d = z_train.shape
    h = n ** (-1.0 / (d + 4)) * np.sqrt(z_train.var(axis=0, ddof=1).mean())
    kde = neighbors.KernelDensity(kernel="gaussian", bandwidth=h).fit(z_train)
    residual = ((emb - pca.inverse_transform(pca.transform(emb))) ** 2).sum(axis=1) / scale**2
    expected = -kde.score_samples(z) + residual / (2 * h * h)
    np.testing.assert_allclose(m.predict(x)["pred_score"].numpy(), expected, rtol=1e-3)
