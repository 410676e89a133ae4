"""DFM (Ahuja et al., "Probabilistic Modeling of Deep Features for Out-of-Distribution and
Adversarial Detection", 2019), in the segmentation form the common reference code uses.

Features of one layer are average-pooled (kernel ``pool_size``), flattened per image and
projected with PCA keeping ``pca_level`` of the variance. The image score is the Gaussian
negative log-likelihood in PCA space; the anomaly map is the feature-reconstruction error
(FRE) of the PCA, summed over channels at each pooled location and upsampled.

Defaults: ``pca_level=0.97`` and ``pool_size=4`` as anomalib; layer ``layer3`` (ResNets) or
``blocks.10`` (EfficientNet-Lite0, stride 16). Differences to anomalib: one ``score_type`` is
not a switch here, both outputs always exist (NLL as ``pred_score``, FRE as
``anomaly_map``); the Gaussian is the diagonal one in PCA space (PCA components decorrelate
the data, so this is the same NLL as anomalib's SVD-based one up to constant factors).
"""

from __future__ import annotations

import os
from typing import Sequence

import torch
import torch.nn.functional as F

from edgeanomaly.components import PCA
from edgeanomaly.errors import ConfigError
from edgeanomaly.models._base import AnomalyModel
from edgeanomaly.models._registry import register_model

__all__ = ["DFM"]


@register_model
class DFM(AnomalyModel):
    """Deep Feature Modeling: PCA of pooled features; NLL score and FRE map.

    Args:
        backbone, layers: one layer; default ``layer3`` / ``blocks.10``.
        pca_level: variance ratio kept (float in (0, 1)) or an integer number of components.
        pool_size: average-pooling kernel applied to the feature map before flattening.
    """

    name = "dfm"
    task = "segmentation"
    min_distinct_images = 2  # PCA of the features across images
    default_layers = {"resnet18": ("layer3",), "wide_resnet50_2": ("layer3",), "efficientnet_lite0": ("blocks.10",)}

    def __init__(
        self,
        backbone: str = "efficientnet_lite0",
        layers: Sequence[str] | None = None,
        pca_level: float | int = 0.97,
        pool_size: int = 4,
        pretrained: bool = True,
        weights: str | os.PathLike[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        random_state: int | None = 0,
    ) -> None:
        if int(pool_size) < 1:
            raise ConfigError(f"Expected pool_size >= 1, got {pool_size}")
        settings = {"pca_level": pca_level, "pool_size": int(pool_size)}
        super().__init__(backbone, layers, pretrained, weights, cache_dir, random_state, settings)
        if len(self.layers) != 1:
            raise ConfigError(f"DFM uses exactly one layer, got {list(self.layers)}")
        self.pool_size = int(pool_size)
        self.pca = PCA(n_components=pca_level)
        self.register_buffer("log_var_sum", torch.empty(0))

    @property
    def max_stride(self) -> int:
        return super().max_stride * self.pool_size

    def _pooled(self, images: torch.Tensor) -> torch.Tensor:
        f = self.feature_extractor(images)[self.layers[0]]
        if self.pool_size > 1:
            f = F.avg_pool2d(f, kernel_size=self.pool_size)
        return f

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> pooled, flattened features (N, C * h * w)."""
        return self._pooled(images).flatten(1)

    def _finish(self) -> None:
        x = self._take_rows()
        if x.shape[0] < 2:
            raise ValueError(f"DFM needs at least 2 training images for its PCA, got {x.shape[0]}")
        self.pca.fit(x)
        var = self.pca.explained_variance_.clamp_min(torch.finfo(torch.float32).tiny)
        self.log_var_sum = torch.log(var).sum().reshape(1)

    def _fitted_tensors(self) -> Sequence[torch.Tensor]:
        return (self.pca.components_, self.log_var_sum)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self._pooled(images)
        n, c, h, w = pooled.shape
        x = pooled.flatten(1)
        z = self.pca.transform(x)
        var = self.pca.explained_variance_.clamp_min(torch.finfo(torch.float32).tiny)
        nll = (z * z / var).sum(dim=1) + self.log_var_sum
        recon = self.pca.inverse_transform(z)
        fre = (x - recon).pow(2).view(n, c, h, w).sum(dim=1, keepdim=True)
        amap = F.interpolate(fre, size=images.shape[-2:], mode="bilinear", align_corners=False)
        return nll, amap
