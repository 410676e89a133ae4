"""DFM (Ahuja et al., "Probabilistic Modeling of Deep Features for Out-of-Distribution and
Adversarial Detection", 2019), in the segmentation form the common reference code uses.

Features of one layer are average-pooled (kernel ``pool_size``), flattened per image and
projected with PCA keeping ``pca_level`` of the variance. The anomaly map is the
feature-reconstruction error (FRE) of the PCA, summed over channels at each pooled location
and upsampled. The image score (``score_type``) is the FRE of the whole feature vector
(default, as anomalib's default) or the paper's Gaussian negative log-likelihood in PCA space.

Why FRE: the NLL measures only the part of a feature inside the PCA subspace of the training
images and divides it by per-component variances. With a few dozen training images and a
feature vector of thousands of dimensions, PCA keeps nearly every component the data has
(43 of 49 on the hazelnut subset), the last ones' variances are noise, and everything a
defect adds outside the subspace of normal images is thrown away. On real hazelnut the NLL
ranked defective nuts below good ones (image AUROC 0.375); the FRE, which is exactly that
thrown-away part, ranks them correctly (see docs/BENCHMARKS.md). The paper fits the Gaussian
on many more images than dimensions, where the NLL is well estimated.

Defaults: ``pca_level=0.97`` as anomalib; ``pool_size=1`` (anomalib pools 4x4, which at
256 px leaves 4x4 locations: a coarser map and a weaker image score on hazelnut); layer
``layer3`` (ResNets) or ``blocks.10`` (EfficientNet-Lite0, stride 16). The Gaussian of
``score_type="nll"`` is the diagonal one in PCA space (PCA components decorrelate the data, so
this is the same NLL as anomalib's SVD-based one up to constant factors).
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

_SCORE_TYPES = ("fre", "nll")


@register_model
class DFM(AnomalyModel):
    """Deep Feature Modeling: PCA of pooled features; NLL score and FRE map.

    Args:
        backbone, layers: one layer; default ``layer3`` / ``blocks.10``.
        pca_level: variance ratio kept (float in (0, 1)) or an integer number of components.
        pool_size: average-pooling kernel applied to the feature map before flattening.
        score_type: ``"fre"`` (feature-reconstruction error, default) or ``"nll"``.
    """

    name = "dfm"
    task = "segmentation"
    min_distinct_images = 2  # PCA of the features across images
    default_layers = {"resnet18": ("layer3",), "wide_resnet50_2": ("layer3",), "efficientnet_lite0": ("blocks.10",)}
    unrecorded_settings = {"score_type": "nll"}

    def __init__(
        self,
        backbone: str = "efficientnet_lite0",
        layers: Sequence[str] | None = None,
        pca_level: float | int = 0.97,
        pool_size: int = 1,
        score_type: str = "fre",
        pretrained: bool = True,
        weights: str | os.PathLike[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        random_state: int | None = 0,
    ) -> None:
        if int(pool_size) < 1:
            raise ConfigError(f"Expected pool_size >= 1, got {pool_size}")
        if score_type not in _SCORE_TYPES:
            raise ConfigError(f"Expected score_type in {list(_SCORE_TYPES)}, got {score_type!r}")
        settings = {"pca_level": pca_level, "pool_size": int(pool_size), "score_type": score_type}
        super().__init__(backbone, layers, pretrained, weights, cache_dir, random_state, settings)
        if len(self.layers) != 1:
            raise ConfigError(f"DFM uses exactly one layer, got {list(self.layers)}")
        self.pool_size = int(pool_size)
        self.score_type = score_type
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
        recon = self.pca.inverse_transform(z)
        fre = (x - recon).pow(2).view(n, c, h, w).sum(dim=1, keepdim=True)
        amap = F.interpolate(fre, size=images.shape[-2:], mode="bilinear", align_corners=False)
        if self.score_type == "fre":
            return fre.flatten(1).sum(dim=1), amap
        var = self.pca.explained_variance_.clamp_min(torch.finfo(torch.float32).tiny)
        return (z * z / var).sum(dim=1) + self.log_var_sum, amap
