"""Constants of bundle format v1: one place that says what a valid value is.

Everything else in :mod:`edgeanomaly.bundle` reads its vocabulary from here, and
``export/BUNDLE.md`` documents the same tables.
"""

from __future__ import annotations

__all__ = [
    "SCHEMA_VERSION",
    "MANIFEST_NAME",
    "FORMATS",
    "PRECISIONS",
    "TASKS",
    "CALIBRATION_METHODS",
    "MODEL_INFO_KEYS",
    "INPUT_NAME",
    "OUTPUT_NAMES",
]

#: The schema version this edgeanomaly writes, and the newest it reads.
SCHEMA_VERSION: int = 1

#: File name of the manifest at the bundle root.
MANIFEST_NAME: str = "manifest.json"

#: Artifact format -> file suffix of the file a backend loads (``Artifact.path``).
FORMATS: dict[str, str] = {"onnx": ".onnx", "openvino": ".xml"}

PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")

#: Task -> names of the graph outputs, in order.
TASKS: dict[str, tuple[str, ...]] = {
    "segmentation": ("pred_score", "anomaly_map"),
    "classification": ("pred_score",),
}

CALIBRATION_METHODS: tuple[str, ...] = ("f1_adaptive", "quantile", "manual")

#: Keys every ``model_info`` carries (more are allowed). Values are strings because ONNX
#: ``metadata_props`` and OpenVINO ``rt_info`` store strings.
MODEL_INFO_KEYS: tuple[str, ...] = (
    "model",
    "task",
    "backbone",
    "layers",
    "input_height",
    "input_width",
    "edgeanomaly_version",
    "created_utc",
    "pretrained",
    "weights_source",
    "schema_version",
    "preprocessing",
    "normalization",
)

INPUT_NAME: str = "image"
OUTPUT_NAMES: tuple[str, ...] = ("pred_score", "anomaly_map")
