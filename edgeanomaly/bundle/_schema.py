"""Constants of bundle format v1: one place that says what a valid value is.

Everything else in :mod:`edgeanomaly.bundle` reads its vocabulary from here, and
``export/BUNDLE.md`` documents the same tables.
"""

from __future__ import annotations

from typing import Iterator, Mapping

from edgeanomaly import registry

__all__ = [
    "SCHEMA_VERSION",
    "MANIFEST_NAME",
    "SIGNATURE_NAME",
    "FORMATS",
    "PRECISIONS",
    "TASKS",
    "CALIBRATION_METHODS",
    "MODEL_INFO_KEYS",
    "INPUT_NAME",
    "OUTPUT_NAMES",
    "EXECUTION_PRECISIONS",
    "EXECUTION_OUTCOMES",
]

#: The schema version this edgeanomaly writes, and the newest it reads.
SCHEMA_VERSION: int = 1

#: File name of the manifest at the bundle root.
MANIFEST_NAME: str = "manifest.json"

#: File name of the detached signature at the bundle root (optional; see BUNDLE.md, "Signatures").
SIGNATURE_NAME: str = "signature.json"



class _FormatSuffixes(Mapping[str, str]):
    """A live, read-only view of :mod:`edgeanomaly.registry`: format -> suffix of its loadable file."""

    def __getitem__(self, name: str) -> str:
        if name not in registry.format_names():
            raise KeyError(name)
        return registry.get_format(name).suffix

    def __iter__(self) -> Iterator[str]:
        return iter(registry.format_names())

    def __len__(self) -> int:
        return len(registry.format_names())

    def __repr__(self) -> str:
        return repr(dict(self))


#: Artifact format -> file suffix of the file a backend loads (``Artifact.path``); the
#: registry's format rows, so a format registered there is valid in a manifest.
FORMATS: Mapping[str, str] = _FormatSuffixes()

PRECISIONS: tuple[str, ...] = registry.PRECISIONS

#: Execution precisions export may measure an artifact at (optional ``execution_precisions``
#: of a ``reference.parity`` entry), and the outcomes recorded for each.
EXECUTION_PRECISIONS: tuple[str, ...] = registry.EXECUTION_PRECISIONS
EXECUTION_OUTCOMES: tuple[str, ...] = ("PASS", "INCONCLUSIVE", "FAIL", "NOT_MEASURED")

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
