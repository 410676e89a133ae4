"""Training-side building blocks (torch): backbones, feature extraction and estimators.

Names are resolved lazily so importing one component does not build the others.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FeatureExtractor": "edgeanomaly.components._feature_extractor",
    "create_backbone": "edgeanomaly.components._backbones",
    "list_backbones": "edgeanomaly.components._backbones",
    "resolve_weights": "edgeanomaly.components._weights",
    "GaussianBlur2d": "edgeanomaly.components._blur",
    "DynamicBufferModule": "edgeanomaly.components._buffer",
    "PCA": "edgeanomaly.components._pca",
    "SparseRandomProjection": "edgeanomaly.components._random_projection",
    "KCenterGreedy": "edgeanomaly.components._kcenter",
    "GaussianKDE": "edgeanomaly.components._kde",
    "MultivariateGaussian": "edgeanomaly.components._gaussian",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'edgeanomaly.components' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
