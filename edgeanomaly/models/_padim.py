"""PaDiM (Defard et al., "PaDiM: a Patch Distribution Modeling Framework", ICPR 2021).

A Gaussian per feature-map location over the concatenated features of three layers, reduced
to a random channel subset; the anomaly map is the Mahalanobis distance at each location.

Defaults follow the paper: three layers (strides 4, 8, 16), ``n_features`` random channels
(paper: 100 for ResNet18, 550 for WideResNet50), covariance regularised with ``0.01 * I``,
nearest-neighbour upsampling of the deeper layers (as the reference code), Gaussian blur
sigma 4 on the upsampled map, image score = maximum of the map.

Differences to anomalib: the statistics are accumulated in float64 over batches
(``MultivariateGaussian.partial_fit``) instead of holding every training embedding in
memory; the result is the same up to float rounding.
"""

from __future__ import annotations

import os
from typing import Sequence

import torch
import torch.nn.functional as F

from edgeanomaly.components import GaussianBlur2d, MultivariateGaussian
from edgeanomaly.errors import ConfigError
from edgeanomaly.models._base import STRIDE_4_8_16_LAYERS, AnomalyModel, concat_layers
from edgeanomaly.models._registry import register_model

__all__ = ["PaDiM"]

_DEFAULT_N_FEATURES = {"resnet18": 100, "wide_resnet50_2": 550, "efficientnet_lite0": 100}


@register_model
class PaDiM(AnomalyModel):
    """PaDiM: per-location multivariate Gaussian of patch features, Mahalanobis scoring.

    Args:
        backbone: backbone name (default ``efficientnet_lite0``).
        layers: three layers; default ``layer1..layer3`` for ResNets,
            ``blocks.2, blocks.4, blocks.10`` (strides 4, 8, 16) for EfficientNet-Lite0.
        n_features: size of the random channel subset (None: the paper's value for the
            backbone, else all channels).
        regularization: added to the covariance diagonal (paper: 0.01).
        blur_sigma: Gaussian blur sigma on the upsampled map.
        random_state: seeds the channel subset.

    Fitted: ``gaussian.mean_`` (C, L), ``gaussian.inv_cov_`` (L, C, C) with L = h * w.
    """

    name = "padim"
    task = "segmentation"
    min_distinct_images = 2  # a Gaussian per patch position: a covariance across images
    default_layers = STRIDE_4_8_16_LAYERS

    def __init__(
        self,
        backbone: str = "efficientnet_lite0",
        layers: Sequence[str] | None = None,
        n_features: int | None = None,
        regularization: float = 0.01,
        blur_sigma: float = 4.0,
        pretrained: bool = True,
        weights: str | os.PathLike[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        random_state: int | None = 0,
    ) -> None:
        if regularization <= 0:
            raise ConfigError(f"Expected regularization > 0, got {regularization}")
        settings = {"n_features": n_features, "regularization": float(regularization), "blur_sigma": float(blur_sigma)}
        super().__init__(backbone, layers, pretrained, weights, cache_dir, random_state, settings)
        total = sum(self.feature_extractor.channels.values())
        if n_features is None:
            n_features = min(_DEFAULT_N_FEATURES.get(backbone, total), total)
        if not 1 <= int(n_features) <= total:
            raise ConfigError(f"Expected n_features in [1, {total}] for layers {self.layers}, got {n_features}")
        self._settings["n_features"] = int(n_features)
        self.n_features = int(n_features)
        gen = torch.Generator().manual_seed(0 if random_state is None else int(random_state))
        idx = torch.randperm(total, generator=gen)[: self.n_features].sort().values
        self.register_buffer("channel_idx", idx)
        self.gaussian = MultivariateGaussian(eps=float(regularization))
        self.blur = GaussianBlur2d(sigma=float(blur_sigma), channels=1)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, n_features, H / s, W / s), s = first layer stride."""
        feats = self.feature_extractor(images)
        emb = concat_layers(feats, self.layers, mode="nearest")
        return torch.index_select(emb, 1, self.channel_idx)

    def _reset(self) -> None:
        self.gaussian.reset()

    def _update(self, embedding: torch.Tensor) -> None:
        # Accumulate only: inverting L covariances after every batch would waste the fit.
        self.gaussian.accumulate(embedding)

    def _finish(self) -> None:
        self.gaussian.finalize()

    def _fitted_tensors(self) -> Sequence[torch.Tensor]:
        return (self.gaussian.mean_, self.gaussian.inv_cov_)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.embed(images)
        dist = self.gaussian.mahalanobis(emb).unsqueeze(1)  # (N, 1, h, w)
        amap = F.interpolate(dist, size=images.shape[-2:], mode="bilinear", align_corners=False)
        amap = self.blur(amap)
        return amap.amax(dim=(1, 2, 3)), amap
