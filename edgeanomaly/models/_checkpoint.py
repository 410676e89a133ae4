"""Checkpoints without pickled classes: ``checkpoint.json`` (settings) + ``model.pt`` (tensors).

``model.pt`` is a plain ``{name: tensor}`` state dict loaded with ``torch.load(weights_only=True)``,
so opening a checkpoint from somewhere else never executes code.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from edgeanomaly import __version__
from edgeanomaly._diskspace import check_free_space, existing_parent, is_out_of_space, nearly_full
from edgeanomaly.data import PreprocessConfig
from edgeanomaly.errors import ConfigError, OutOfSpaceError
from edgeanomaly.models._base import AnomalyModel
from edgeanomaly.models._registry import create_model, model_class

__all__ = ["Checkpoint", "save_checkpoint", "load_checkpoint", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "edgeanomaly-checkpoint"
CHECKPOINT_VERSION = 1
_CONFIG = "checkpoint.json"
_WEIGHTS = "model.pt"


@dataclass
class Checkpoint:
    """A fitted model with everything export needs.

    Attributes:
        model: the fitted model, in eval mode.
        preprocessing: how images were turned into inputs while fitting.
        calibration: the ``Calibration`` dict computed at fit time, or None.
        info: provenance (dataset, category, number of images, seconds, versions).
        metrics: test metrics printed at fit time, if a labelled test split existed.
    """

    model: AnomalyModel
    preprocessing: PreprocessConfig
    calibration: dict[str, Any] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


def save_checkpoint(path: str | os.PathLike[str], ckpt: Checkpoint) -> Path:
    """Write ``path/checkpoint.json`` and ``path/model.pt`` (atomically replaces the pair)."""
    ckpt.model.check_is_fitted()
    out = Path(path)
    doc = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "edgeanomaly_version": __version__,
        "model": ckpt.model.get_config(),
        "preprocessing": ckpt.preprocessing.to_dict(),
        "calibration": ckpt.calibration,
        "info": ckpt.info,
        "metrics": ckpt.metrics,
    }
    # On the CPU whatever device fitted: a checkpoint loads anywhere (load maps to the CPU too).
    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in ckpt.model.state_dict().items()}
    text = json.dumps(doc, indent=2, sort_keys=False) + "\n"
    # torch's zip writer adds about 1 KB per tensor of headers and alignment
    needed = sum(t.numel() * t.element_size() for t in state.values()) + 1024 * len(state) + len(text) + (64 << 10)
    check_free_space([(out, needed, "the checkpoint")], "Choose another --out, or free some space.")
    created = [p for p in (out, *out.parents) if not p.exists()]
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".ckpt-", dir=out))
    try:
        torch.save(state, tmp / _WEIGHTS)
        (tmp / _CONFIG).write_text(text)
        # Weights first, config last: a config on disk always refers to complete weights.
        os.replace(tmp / _WEIGHTS, out / _WEIGHTS)
        os.replace(tmp / _CONFIG, out / _CONFIG)
    except (OSError, RuntimeError) as exc:
        # torch's zip writer reports a full disk as "unexpected pos N vs M": measured here, not parsed
        full = is_out_of_space(exc) or nearly_full(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in created:  # an empty run folder is not left behind
            try:
                folder.rmdir()
            except OSError:
                break
        if full:
            raise OutOfSpaceError(
                f"The disk of {existing_parent(out)} ran out of space while the checkpoint was written to {out} "
                f"(about {needed / 1e6:.1f} MB needed); nothing was kept. Free some space or choose another --out."
            ) from exc
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Rebuild a fitted model from a run directory written by :func:`save_checkpoint`."""
    root = Path(path)
    if root.is_file() and root.name == _CONFIG:
        root = root.parent
    cfg_path, w_path = root / _CONFIG, root / _WEIGHTS
    if not cfg_path.is_file():
        raise ConfigError(f"Not an edgeanomaly checkpoint: {cfg_path} not found (expected the RUN_DIR written by 'edgeanomaly fit')")
    if not w_path.is_file():
        raise ConfigError(f"Checkpoint {root} is incomplete: {w_path} not found")
    try:
        doc = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"Checkpoint config {cfg_path} is not valid JSON: {exc}") from exc
    if doc.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(f"{cfg_path} is not an edgeanomaly checkpoint (format {doc.get('format')!r})")
    if int(doc.get("version", 0)) > CHECKPOINT_VERSION:
        raise ConfigError(
            f"Checkpoint {root} has version {doc['version']}; this edgeanomaly reads <= {CHECKPOINT_VERSION}. Upgrade edgeanomaly."
        )
    mcfg = doc["model"]
    # Settings added after a checkpoint was written take the value it was fitted with, not
    # today's default: a checkpoint always scores as it did when it was saved.
    params = {**model_class(mcfg["model"]).unrecorded_settings, **mcfg["params"]}
    # Random init: the state dict below carries the backbone weights that were fitted with.
    model = create_model(mcfg["model"], **params, pretrained=False)
    state = torch.load(w_path, map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    model.pretrained = bool(mcfg.get("pretrained", False))
    model.weights_source = mcfg.get("weights_source", model.weights_source)
    model.feature_extractor.weights_source = model.weights_source
    model.eval()
    return Checkpoint(
        model=model,
        preprocessing=PreprocessConfig.from_dict(doc["preprocessing"]),
        calibration=doc.get("calibration"),
        info=doc.get("info", {}),
        metrics=doc.get("metrics", {}),
    )
