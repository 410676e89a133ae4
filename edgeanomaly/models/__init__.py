"""Anomaly models (torch): PatchCore, PaDiM, DFKDE, DFM (one pass), FastFlow and EfficientAD (trained), with a
registry, and the training API.

>>> from edgeanomaly.models import create_model, list_models
>>> list_models()
['dfkde', 'dfm', 'efficientad', 'fastflow', 'padim', 'patchcore']

Fit a registered model on a dataset folder, keep the checkpoint, export it:

>>> from edgeanomaly.models import fit_run, load_checkpoint        # doctest: +SKIP
>>> result = fit_run("patchcore", "data", "runs/pc", category="metal")   # doctest: +SKIP
>>> ckpt = load_checkpoint("runs/pc")                              # doctest: +SKIP
>>> from edgeanomaly.export import export_checkpoint               # doctest: +SKIP
>>> export_checkpoint(ckpt, "pc.bundle", precisions=["fp32", "fp16"])   # doctest: +SKIP
"""

from __future__ import annotations

from edgeanomaly.errors import UndertrainedWarning
from edgeanomaly.models._base import AnomalyModel
from edgeanomaly.models._checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from edgeanomaly.models._device import resolve_device
from edgeanomaly.models._dfkde import DFKDE
from edgeanomaly.models._dfm import DFM
from edgeanomaly.models._efficientad import EfficientAD
from edgeanomaly.models._fastflow import FastFlow
from edgeanomaly.models._padim import PaDiM
from edgeanomaly.models._patchcore import PatchCore
from edgeanomaly.models._pipeline import FitResult, fit_run, training_split
from edgeanomaly.models._registry import create_model, list_models, model_class, register_model, unregister_model
from edgeanomaly.models._trained import TrainedModel, TrainingSettings

__all__ = [
    "resolve_device",
    "AnomalyModel",
    "Checkpoint",
    "DFKDE",
    "DFM",
    "EfficientAD",
    "FastFlow",
    "FitResult",
    "PaDiM",
    "PatchCore",
    "TrainedModel",
    "TrainingSettings",
    "UndertrainedWarning",
    "create_model",
    "fit_run",
    "list_models",
    "load_checkpoint",
    "model_class",
    "register_model",
    "save_checkpoint",
    "training_split",
    "unregister_model",
]
