"""Training-side building blocks (torch): backbones, feature extraction, estimators and
invertible flow blocks.

Names are resolved lazily so importing one component does not build the others.
"""

from __future__ import annotations

from edgeanomaly._lazy import lazy_exports

_EXPORTS = {
    "FeatureExtractor": "edgeanomaly.components._feature_extractor",
    "create_backbone": "edgeanomaly.components._backbones",
    "list_backbones": "edgeanomaly.components._backbones",
    "register_backbone": "edgeanomaly.components._backbones",
    "unregister_backbone": "edgeanomaly.components._backbones",
    "Backbone": "edgeanomaly.components._backbones",
    "FeatureInfo": "edgeanomaly.components._backbones",
    "resolve_weights": "edgeanomaly.components._weights",
    "GaussianBlur2d": "edgeanomaly.components._blur",
    "DynamicBufferModule": "edgeanomaly.components._buffer",
    "PCA": "edgeanomaly.components._pca",
    "SparseRandomProjection": "edgeanomaly.components._random_projection",
    "KCenterGreedy": "edgeanomaly.components._kcenter",
    "CORESET_METHODS": "edgeanomaly.components._kcenter",
    "GaussianKDE": "edgeanomaly.components._kde",
    "MultivariateGaussian": "edgeanomaly.components._gaussian",
    "AffineCouplingBlock": "edgeanomaly.components._flow",
    "FlowSequence": "edgeanomaly.components._flow",
    "fastflow_blocks": "edgeanomaly.components._flow",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
