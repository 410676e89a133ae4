"""Run an artifact on images and compare its raw outputs with a reference: the one check that
export parity, ``validate`` and ``benchmark`` all make.

The engine is either a loaded :class:`~edgeanomaly.runtime.Detector` (given RGB uint8 images
at model input size, as stored in ``reference.npz``) or a bare runtime backend (given the
preprocessed batch, as export has it). Either way the outputs compared are the raw graph
outputs, ``pred_score (N,)`` and ``anomaly_map (N, 1, H, W)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from edgeanomaly.metrics import relative_diff
from edgeanomaly.registry import backends_for, get_backend

if TYPE_CHECKING:
    from edgeanomaly.bundle import Calibration

__all__ = ["raw_outputs", "run_artifact", "compare_outputs", "reproduce"]

_CHUNK = 8  # images per backend call: bounded memory on large held-out sets


def raw_outputs(engine: Any, inputs: Sequence[np.ndarray] | np.ndarray) -> dict[str, np.ndarray]:
    """Raw outputs of ``engine`` on ``inputs``.

    Args:
        engine: a Detector (``inputs``: RGB uint8 images) or a backend with ``run``
            (``inputs``: ``(N, 3, H, W) float32`` preprocessed).

    Returns:
        ``{"pred_score": (N,) float32, "anomaly_map": (N, 1, H, W) float32}`` (no map for a
        classification model).
    """
    if hasattr(engine, "predict_batch"):
        preds = engine.predict_batch(list(inputs), color="RGB", batch_size=max(1, len(inputs)))
        out = {"pred_score": np.array([p.raw_score for p in preds], np.float32)}
        if preds and preds[0].raw_anomaly_map is not None:
            out["anomaly_map"] = np.stack([p.raw_anomaly_map for p in preds])[:, None].astype(np.float32)
        return out
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(inputs), _CHUNK):
        for name, value in engine.run(inputs[start : start + _CHUNK]).items():
            parts.setdefault(name, []).append(np.asarray(value, np.float32))
    return {name: np.concatenate(values) for name, values in parts.items()}


def run_artifact(
    path: Any, fmt: str, precision: str, batch: np.ndarray, *, static_batch: int | None = None,
    device: str = "CPU", options: Mapping[str, Any] | None = None, backend: str | None = None,
) -> tuple[dict[str, np.ndarray], str]:
    """``(raw outputs, verified precision)`` of an artifact file on ``batch`` ((N, 3, H, W)
    float32), run by the backend that prefers its format (what a device uses) or by
    ``backend`` (a registry name, e.g. ``"openvino"`` for an ONNX file), then closed.

    Args:
        path: the artifact's loadable file; ``fmt`` and ``precision`` its registry format and
            storage precision.
        static_batch, device, options: as for the backend row's ``create``
            (e.g. ``{"inference_precision": "bf16"}``).
    """
    row = get_backend(backend) if backend else backends_for(fmt)[0]
    engine = row.create(path, device, artifact_precision=precision, static_batch=static_batch, **(options or {}))
    try:
        return raw_outputs(engine, batch), engine.precision
    finally:
        engine.close()


def compare_outputs(
    outputs: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray], calibration: Calibration | None = None
) -> dict[str, Any]:
    """Largest absolute and relative differences of score and map, and label flips.

    Returns ``n_images``, ``max_abs_score_diff``, ``max_rel_score_diff``, (with maps)
    ``max_abs_map_diff``, ``max_rel_map_diff``, and (with a calibration) ``label_flips``:
    images whose label at the bundle's image threshold differs from the reference's.
    """
    ref_scores = np.asarray(reference["pred_score"])
    result: dict[str, Any] = {"n_images": int(ref_scores.shape[0])}
    result["max_abs_score_diff"], result["max_rel_score_diff"] = relative_diff(outputs["pred_score"], ref_scores)
    if "anomaly_map" in reference and "anomaly_map" in outputs:
        result["max_abs_map_diff"], result["max_rel_map_diff"] = relative_diff(outputs["anomaly_map"], reference["anomaly_map"])
    if calibration is not None:
        flips = calibration.label_score(np.asarray(outputs["pred_score"])) != calibration.label_score(ref_scores)
        result["label_flips"] = int(np.sum(flips))
    return result


def reproduce(
    engine: Any,
    inputs: Sequence[np.ndarray] | np.ndarray,
    reference: Mapping[str, np.ndarray],
    calibration: Calibration | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Run ``engine`` on ``inputs`` and compare with ``reference``: ``(outputs, comparison)``.

    >>> with load("pc.bundle", artifact="openvino-fp16") as det, read_bundle("pc.bundle") as b:   # doctest: +SKIP
    ...     ref = b.reference()
    ...     _, diff = reproduce(det, ref["images"], ref, det.calibration)
    >>> diff["max_rel_score_diff"] < 0.05                                                       # doctest: +SKIP
    True
    """
    outputs = raw_outputs(engine, inputs)
    return outputs, compare_outputs(outputs, reference, calibration)
