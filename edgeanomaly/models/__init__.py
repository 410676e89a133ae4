"""Anomaly models (torch): PatchCore, PaDiM, DFKDE, DFM, with a registry.

>>> from edgeanomaly.models import create_model, list_models
>>> list_models()
['dfkde', 'dfm', 'padim', 'patchcore']
"""

from __future__ import annotations

from edgeanomaly.models._base import AnomalyModel
from edgeanomaly.models._dfkde import DFKDE
from edgeanomaly.models._dfm import DFM
from edgeanomaly.models._padim import PaDiM
from edgeanomaly.models._patchcore import PatchCore
from edgeanomaly.models._registry import create_model, list_models, model_class, register_model

__all__ = ["AnomalyModel", "DFKDE", "DFM", "PaDiM", "PatchCore", "create_model", "list_models", "model_class", "register_model"]
