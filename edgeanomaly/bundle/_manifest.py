"""Manifest schema v1: dataclasses that validate themselves, ``to_dict`` / ``from_dict``.

Validation happens when an object is built, so a :class:`Manifest` that exists is a
consistent one: the input shape agrees with the preprocessing, the outputs with the task,
the calibration with the outputs, every path stays inside the bundle. Errors name the
manifest field (``artifacts[1].format``).

A manifest may be a *draft*: artifacts without ``files`` or with empty ``sha256``. The
writer fills those in; the reader accepts only complete manifests.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from dataclasses import dataclass, field, fields
from typing import Any, Mapping, Sequence

from edgeanomaly.bundle import _fields as F
from edgeanomaly.bundle._calibration import Calibration, utc_now
from edgeanomaly.bundle._hashing import MANIFEST_SHA256_KEY, content_sha256
from edgeanomaly.bundle._migrate import check_schema_version, migrate
from edgeanomaly.bundle._paths import unsafe_reason
from edgeanomaly.bundle._schema import (
    EXECUTION_OUTCOMES,
    EXECUTION_PRECISIONS,
    FORMATS,
    INPUT_NAME,
    MANIFEST_NAME,
    MODEL_INFO_KEYS,
    SIGNATURE_NAME,
    PRECISIONS,
    SCHEMA_VERSION,
    TASKS,
)
from edgeanomaly.errors import ConfigError
from edgeanomaly.registry import get_format, release_keys

__all__ = ["ArtifactFile", "Artifact", "Manifest", "input_spec", "output_specs"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_REFERENCE_KEYS = ("file", "metrics", "parity", "data")
#: Optional (v1-compatible): earlier reference metrics, replaced when a re-calibration changed
#: the thresholds they were computed at; oldest first (see BUNDLE.md).
_REFERENCE_OPTIONAL = ("history", "category")
_SCALAR_ARRAY = re.compile(r"\[\s*((?:-?[0-9][0-9.eE+-]*|null)(?:\s*,\s*(?:-?[0-9][0-9.eE+-]*|null))*)\s*\]")


def _as_path(value: Any, where: str) -> str:
    path = F.as_str(value, where)
    reason = unsafe_reason(path)
    if reason is not None:
        F.fail(where, f"path {path!r} {reason}")
    if path == MANIFEST_NAME:
        F.fail(where, f"{MANIFEST_NAME!r} is reserved for the manifest")
    if path == SIGNATURE_NAME:
        F.fail(where, f"{SIGNATURE_NAME!r} is reserved for the bundle's signature")
    return path


def input_spec(height: int, width: int, static_batch: int | None = None) -> dict[str, Any]:
    """The ``input`` entry of a v1 manifest.

    >>> input_spec(256, 256)["shape"]
    [-1, 3, 256, 256]
    """
    batch = -1 if static_batch is None else int(static_batch)
    return {
        "name": INPUT_NAME,
        "shape": [batch, 3, int(height), int(width)],
        "dtype": "float32",
        "color": "RGB",
        "layout": "NCHW",
        "value_range": [0.0, 1.0],
    }


def output_specs(task: str, height: int, width: int, static_batch: int | None = None) -> list[dict[str, Any]]:
    """The ``outputs`` entry of a v1 manifest for ``task``.

    >>> [o["name"] for o in output_specs("segmentation", 256, 256)]
    ['pred_score', 'anomaly_map']
    """
    F.as_choice(task, "task", TASKS)
    batch = -1 if static_batch is None else int(static_batch)
    shapes = {"pred_score": [batch], "anomaly_map": [batch, 1, int(height), int(width)]}
    return [{"name": name, "shape": shapes[name]} for name in TASKS[task]]


@dataclass(frozen=True)
class ArtifactFile:
    """One file of a bundle with its checksum.

    Attributes:
        path: relative POSIX path inside the bundle (``openvino/model.bin``).
        sha256: lowercase hex sha256 of the file; ``""`` in a draft (the writer fills it).
        bytes: size in bytes (``0`` in a draft).

    >>> ArtifactFile("model.onnx").to_dict()
    {'path': 'model.onnx', 'sha256': '', 'bytes': 0}
    """

    path: str
    sha256: str = ""
    bytes: int = 0

    def __post_init__(self) -> None:
        self._check("file")

    def _check(self, where: str) -> None:
        object.__setattr__(self, "path", _as_path(self.path, f"{where}.path"))
        digest = F.as_str(self.sha256, f"{where}.sha256").lower()
        if digest and not _SHA256.match(digest):
            F.fail(f"{where}.sha256", f"expected 64 hex digits, got {self.sha256!r}")
        object.__setattr__(self, "sha256", digest)
        object.__setattr__(self, "bytes", F.as_int(self.bytes, f"{where}.bytes", minimum=0))

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "bytes": self.bytes}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "file") -> ArtifactFile:
        F.check_keys(d, where, ("path", "sha256", "bytes"))
        # Validate under the caller's field name before the constructor re-checks.
        obj = object.__new__(cls)
        for key in ("path", "sha256", "bytes"):
            object.__setattr__(obj, key, d[key])
        obj._check(where)
        return obj


def _file_list(value: Any, where: str) -> list[ArtifactFile]:
    if not isinstance(value, (list, tuple)):
        F.fail(where, f"expected a list of files, got {type(value).__name__}")
    out = []
    for i, item in enumerate(value):
        if isinstance(item, ArtifactFile):
            item = item.to_dict()
        out.append(ArtifactFile.from_dict(item, where=f"{where}[{i}]"))
    return out


@dataclass(frozen=True)
class Artifact:
    """One runnable graph in a bundle.

    Attributes:
        name: unique name, by convention ``{format}-{precision}`` (``"openvino-fp16"``).
        format: ``"onnx"`` or ``"openvino"``.
        precision: ``"fp32"``, ``"fp16"`` or ``"int8"``.
        path: the file a backend loads (``model.onnx``, ``openvino/model.xml``).
        files: every file of the artifact including ``path`` (xml + bin; onnx + external
            data). May be empty in a draft: the writer then collects them (see
            :func:`edgeanomaly.bundle.write_bundle`).
        static_batch: the fixed batch size of the graph, or ``None`` for a dynamic batch.

    >>> Artifact("onnx-fp32", "onnx", "fp32", "model.onnx").static_batch is None
    True
    """

    name: str
    format: str
    precision: str
    path: str
    files: list[ArtifactFile] = field(default_factory=list)
    static_batch: int | None = None

    def __post_init__(self) -> None:
        self._check("artifact")

    def _check(self, where: str) -> None:
        name = F.as_str(self.name, f"{where}.name")
        if not _NAME.match(name):
            F.fail(f"{where}.name", f"expected letters, digits, '.', '_' or '-' (like 'openvino-fp16'), got {name!r}")
        fmt = F.as_choice(self.format, f"{where}.format", FORMATS)
        F.as_choice(self.precision, f"{where}.precision", PRECISIONS)
        path = _as_path(self.path, f"{where}.path")
        if not path.endswith(FORMATS[fmt]):
            F.fail(f"{where}.path", f"a {fmt} artifact loads a '{FORMATS[fmt]}' file, got {path!r}")
        files = _file_list(self.files, f"{where}.files")
        paths = [f.path for f in files]
        duplicates = sorted({p for p in paths if paths.count(p) > 1})
        if duplicates:
            F.fail(f"{where}.files", f"lists {', '.join(duplicates)} more than once")
        if files and path not in paths:
            F.fail(f"{where}.files", f"does not list the artifact's own path {path!r}")
        for companion in get_format(fmt).companions:
            if files and not any(p.endswith(companion) for p in paths):
                F.fail(f"{where}.files", f"an {fmt} artifact needs its {companion} file (weights) listed")
        static = self.static_batch
        if static is not None:
            static = F.as_int(static, f"{where}.static_batch", minimum=1)
        object.__setattr__(self, "files", files)
        object.__setattr__(self, "static_batch", static)

    @property
    def bytes(self) -> int:
        """Total size of the artifact's files."""
        return sum(f.bytes for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "format": self.format,
            "precision": self.precision,
            "path": self.path,
            "files": [f.to_dict() for f in self.files],
            "static_batch": self.static_batch,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "artifact") -> Artifact:
        keys = [f.name for f in fields(cls)]
        F.check_keys(d, where, keys)
        obj = object.__new__(cls)
        for key in keys:
            object.__setattr__(obj, key, d[key])
        obj._check(where)
        return obj


def _check_model_info(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        F.fail("model_info", f"expected a JSON object of strings, got {type(value).__name__}")
    info: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            F.fail(
                f"model_info.{key}",
                f"expected a string value (ONNX metadata_props and OpenVINO rt_info hold strings), "
                f"got {type(item).__name__} {item!r}",
            )
        info[key] = item
    missing = [k for k in MODEL_INFO_KEYS if k not in info]
    if missing:
        F.fail("model_info", f"missing key(s) {', '.join(repr(k) for k in missing)}")
    F.as_choice(info["task"], "model_info.task", TASKS)
    F.as_choice(info["pretrained"], "model_info.pretrained", ("true", "false"))
    if info["schema_version"] != str(SCHEMA_VERSION):
        F.fail("model_info.schema_version", f"expected {str(SCHEMA_VERSION)!r}, got {info['schema_version']!r}")
    for key in ("input_height", "input_width"):
        if not info[key].isdigit() or int(info[key]) <= 0:
            F.fail(f"model_info.{key}", f"expected a positive integer as a string, got {info[key]!r}")
    return info


def _check_preprocessing(value: Any) -> dict[str, Any]:
    from edgeanomaly.data import PreprocessConfig  # lazy: the data layer pulls in OpenCV, which importing the bundle package should not

    if not isinstance(value, Mapping):
        F.fail("preprocessing", f"expected a JSON object, got {type(value).__name__}")
    try:
        canonical = PreprocessConfig.from_dict(dict(value)).to_dict()
    except (ConfigError, TypeError, ValueError) as exc:
        F.fail("preprocessing", str(exc))
    if canonical != dict(value):
        F.fail("preprocessing", f"expected the full PreprocessConfig.to_dict() form {canonical}, got {dict(value)}")
    return canonical


def _check_shape(value: Any, where: str, expected: Sequence[int]) -> list[int]:
    if not isinstance(value, (list, tuple)) or len(value) != len(expected):
        F.fail(where, f"expected a shape of {len(expected)} integers like {list(expected)}, got {value!r}")
    shape = [F.as_int(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if shape != list(expected):
        F.fail(where, f"expected {list(expected)}, got {shape}")
    return shape


def _check_input(value: Any, height: int, width: int) -> tuple[dict[str, Any], int]:
    d = F.check_keys(value, "input", ("name", "shape", "dtype", "color", "layout", "value_range"))
    shape = d["shape"]
    batch = shape[0] if isinstance(shape, (list, tuple)) and shape else None
    batch = F.as_int(batch, "input.shape[0]")
    if batch != -1 and batch < 1:
        F.fail("input.shape[0]", f"expected -1 (dynamic batch) or a static batch >= 1, got {batch}")
    expected = input_spec(height, width, None if batch == -1 else batch)
    for key in ("name", "dtype", "color", "layout"):
        if d[key] != expected[key]:
            F.fail(f"input.{key}", f"schema {SCHEMA_VERSION} graphs take {expected[key]!r}, got {d[key]!r}")
    _check_shape(shape, "input.shape", expected["shape"])
    value_range = d["value_range"]
    if not isinstance(value_range, (list, tuple)) or [F.as_float(v, "input.value_range") for v in value_range] != [0.0, 1.0]:
        F.fail("input.value_range", f"schema {SCHEMA_VERSION} graphs take pixels in [0.0, 1.0], got {value_range!r}")
    return expected, batch


def _check_outputs(value: Any, task: str, height: int, width: int, batch: int) -> list[dict[str, Any]]:
    expected = output_specs(task, height, width, None if batch == -1 else batch)
    if not isinstance(value, (list, tuple)):
        F.fail("outputs", f"expected a list, got {type(value).__name__}")
    names = [o.get("name") if isinstance(o, Mapping) else o for o in value]
    if names != [o["name"] for o in expected]:
        F.fail("outputs", f"a {task} model has outputs {[o['name'] for o in expected]}, got {names}")
    for i, (got, want) in enumerate(zip(value, expected)):
        F.check_keys(got, f"outputs[{i}]", ("name", "shape"))
        _check_shape(got["shape"], f"outputs[{i}].shape", want["shape"])
    return expected


def _check_executions(value: Any, where: str) -> None:
    """Optional (v1-compatible) record of an artifact's execution precisions measured at export:
    precision -> {"outcome", "device", ...}; a measured one carries its drift, one that was
    not measured the reason (see BUNDLE.md)."""
    if not isinstance(value, Mapping):
        F.fail(where, f"expected a JSON object keyed by execution precision, got {type(value).__name__}")
    for precision, entry in value.items():
        at = f"{where}.{precision}"
        F.as_choice(precision, f"{where} key", EXECUTION_PRECISIONS)
        if not isinstance(entry, Mapping):
            F.fail(at, f"expected a JSON object, got {type(entry).__name__}")
        for required in ("outcome", "device"):
            if required not in entry:
                F.fail(at, f"missing key {required!r}")
        outcome = F.as_choice(entry["outcome"], f"{at}.outcome", EXECUTION_OUTCOMES)
        F.as_str(entry["device"], f"{at}.device", allow_empty=False)
        if outcome == "NOT_MEASURED":
            if "reason" not in entry:
                F.fail(at, "a precision that was not measured needs its 'reason'")
            F.as_str(entry["reason"], f"{at}.reason", allow_empty=False)
            continue
        for required in ("max_rel_diff", "decision_flips"):
            if required not in entry:
                F.fail(at, f"a measured precision needs {required!r}")
        if entry["max_rel_diff"] is not None and F.as_float(entry["max_rel_diff"], f"{at}.max_rel_diff") < 0:
            F.fail(f"{at}.max_rel_diff", f"expected a relative difference >= 0, got {entry['max_rel_diff']}")
        F.as_int(entry["decision_flips"], f"{at}.decision_flips", minimum=0)
        # The release of the backend that measured, under its row's name (OpenVINO's: "openvino").
        present = [k for k in release_keys() if k in entry]
        if not present:
            F.fail(at, f"a measured precision needs the release of the backend that measured it, under one of {list(release_keys())}")
        F.as_str(entry[present[0]], f"{at}.{present[0]}", allow_empty=False)


def _check_reference(value: Any, python: bool) -> dict[str, Any]:
    if python and isinstance(value, Mapping):
        value = {"file": None, "metrics": {}, "parity": {}, "data": "", **value}
    d = F.check_keys(value, "reference", _REFERENCE_KEYS, _REFERENCE_OPTIONAL)
    ref_file = d["file"]
    if isinstance(ref_file, ArtifactFile):
        ref_file = ref_file.to_dict()
    if ref_file is not None:
        ref_file = ArtifactFile.from_dict(ref_file, where="reference.file")
    metrics = d["metrics"]
    if not isinstance(metrics, Mapping):
        F.fail("reference.metrics", f"expected a JSON object of numbers, got {type(metrics).__name__}")
    clean: dict[str, float] = {}
    for key, item in metrics.items():
        where = f"reference.metrics.{key}"
        if not isinstance(key, str):
            F.fail("reference.metrics", f"expected string keys, got {key!r}")
        if item is None:
            clean[key] = math.nan  # an undefined metric (NaN) is written as null
        elif isinstance(item, bool) or not isinstance(item, numbers.Real):
            F.fail(where, f"expected a number or null, got {type(item).__name__} {item!r}")
        else:
            clean[key] = float(item)
    parity = d["parity"]
    if not isinstance(parity, Mapping):
        F.fail("reference.parity", f"expected a JSON object keyed by artifact name, got {type(parity).__name__}")
    for key, item in parity.items():
        if not isinstance(item, Mapping):
            F.fail(f"reference.parity.{key}", f"expected a JSON object, got {type(item).__name__}")
    parity = F.as_json_value(parity, "reference.parity")
    for key, item in parity.items():
        if "execution_precisions" in item:
            _check_executions(item["execution_precisions"], f"reference.parity.{key}.execution_precisions")
    data = F.as_str(d["data"], "reference.data")
    out = {"file": ref_file, "metrics": clean, "parity": parity, "data": data}
    if "history" in d:
        history = d["history"]
        if not isinstance(history, (list, tuple)) or not all(isinstance(h, Mapping) for h in history):
            F.fail("reference.history", f"expected a list of JSON objects, got {type(history).__name__}")
        out["history"] = F.as_json_value(list(history), "reference.history")
    if "category" in d:
        out["category"] = F.as_str(d["category"], "reference.category")
    return out


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """The manifest of a bundle (``manifest.json``), schema v1.

    Attributes:
        schema_version: always :data:`SCHEMA_VERSION` once built (older dicts are migrated by
            :meth:`from_dict`).
        model_info: flat ``str -> str`` description of the model, the same set written into
            ONNX ``metadata_props`` and OpenVINO ``rt_info``; see ``export/BUNDLE.md`` for the keys.
        preprocessing: ``PreprocessConfig.to_dict()``.
        input: the graph input (see :func:`input_spec`).
        outputs: the graph outputs (see :func:`output_specs`).
        calibration: thresholds and normalisation ranges.
        artifacts: the runnable graphs (at least one).
        reference: ``{"file": ArtifactFile | None, "metrics": {name: float}, "parity":
            {artifact_name: {...}}, "data": str}``; results of the torch model at export time.
        created_utc: ISO 8601 UTC time the bundle was exported.

    Example (``preprocessing`` as produced by ``PreprocessConfig(256).to_dict()``)::

        manifest = Manifest(
            model_info={...},
            preprocessing={"image_size": [256, 256], "center_crop": None, "interpolation": "auto"},
            input=input_spec(256, 256),
            outputs=output_specs("segmentation", 256, 256),
            calibration=Calibration(image_threshold=3.1, image_min=0.4, image_max=7.9,
                                    pixel_threshold=2.8, pixel_min=0.0, pixel_max=9.5),
            artifacts=[Artifact("onnx-fp32", "onnx", "fp32", "model.onnx")],
        )
    """

    schema_version: int = SCHEMA_VERSION
    model_info: dict[str, str]
    preprocessing: dict[str, Any]
    input: dict[str, Any]
    outputs: list[dict[str, Any]]
    calibration: Calibration
    artifacts: list[Artifact]
    reference: dict[str, Any] = field(default_factory=dict)
    created_utc: str = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        self._check(python=True)

    def _check(self, python: bool) -> None:
        set_ = object.__setattr__
        version = F.as_int(self.schema_version, "schema_version")
        if version != SCHEMA_VERSION:
            F.fail("schema_version", f"a Manifest object is schema {SCHEMA_VERSION}, got {version} (use Manifest.from_dict to migrate)")
        info = _check_model_info(self.model_info)
        preprocessing = _check_preprocessing(self.preprocessing)
        height, width = preprocessing["center_crop"] or preprocessing["image_size"]
        if (info["input_height"], info["input_width"]) != (str(height), str(width)):
            F.fail(
                "model_info.input_height",
                f"input_height/input_width ({info['input_height']}x{info['input_width']}) disagree with "
                f"the preprocessing output size {height}x{width}",
            )
        try:
            embedded = json.loads(info["preprocessing"])
        except json.JSONDecodeError as exc:
            F.fail("model_info.preprocessing", f"expected the preprocessing dict as a JSON string ({exc})")
        if embedded != preprocessing:
            F.fail("model_info.preprocessing", f"disagrees with the manifest's 'preprocessing' field: {embedded} != {preprocessing}")
        task = info["task"]
        input_, batch = _check_input(self.input, height, width)
        outputs = _check_outputs(self.outputs, task, height, width, batch)

        calibration = self.calibration
        if isinstance(calibration, Mapping):
            calibration = Calibration.from_dict(calibration)
        if not isinstance(calibration, Calibration):
            F.fail("calibration", f"expected a Calibration, got {type(calibration).__name__}")
        if task == "segmentation" and not calibration.has_pixel:
            F.fail("calibration.pixel_threshold", "a segmentation model needs pixel_threshold, pixel_min and pixel_max")
        if task == "classification" and calibration.has_pixel:
            F.fail("calibration.pixel_threshold", "a classification model has no anomaly map: pixel values must be null")

        if not isinstance(self.artifacts, (list, tuple)) or not self.artifacts:
            F.fail("artifacts", "expected a non-empty list of artifacts")
        artifacts = []
        for i, item in enumerate(self.artifacts):
            d = item.to_dict() if isinstance(item, Artifact) else item
            artifacts.append(Artifact.from_dict(d, where=f"artifacts[{i}]"))
        names = [a.name for a in artifacts]
        for i, artifact in enumerate(artifacts):
            if names.index(artifact.name) != i:
                F.fail(f"artifacts[{i}].name", f"artifact name {artifact.name!r} is used twice")
            want = None if batch == -1 else batch
            if artifact.static_batch != want:
                F.fail(
                    f"artifacts[{i}].static_batch",
                    f"must match the input batch dimension ({'dynamic, null' if want is None else want}), "
                    f"got {artifact.static_batch}",
                )
        reference = _check_reference(self.reference, python)
        seen: dict[str, tuple[str, ArtifactFile]] = {}
        owners = [(f"artifacts[{i}]", f) for i, a in enumerate(artifacts) for f in a.files]
        if reference["file"] is not None:
            owners.append(("reference.file", reference["file"]))
        for where, f in owners:
            if f.path in seen and (seen[f.path][1].sha256, seen[f.path][1].bytes) != (f.sha256, f.bytes):
                F.fail(where, f"lists {f.path!r} with a different sha256/bytes than {seen[f.path][0]}")
            seen.setdefault(f.path, (where, f))
        set_(self, "schema_version", version)
        set_(self, "model_info", info)
        set_(self, "preprocessing", preprocessing)
        set_(self, "input", input_)
        set_(self, "outputs", outputs)
        set_(self, "calibration", calibration)
        set_(self, "artifacts", artifacts)
        set_(self, "reference", reference)
        set_(self, "created_utc", F.as_timestamp(self.created_utc, "created_utc"))

    @property
    def task(self) -> str:
        """``"segmentation"`` or ``"classification"``."""
        return self.model_info["task"]

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the model input."""
        return int(self.input["shape"][2]), int(self.input["shape"][3])

    @property
    def static_batch(self) -> int | None:
        """The fixed batch size of the graphs, or ``None`` when the batch is dynamic."""
        batch = int(self.input["shape"][0])
        return None if batch == -1 else batch

    def files(self) -> list[ArtifactFile]:
        """Every checksummed file of the bundle (artifacts, then the reference), each path once."""
        out: dict[str, ArtifactFile] = {}
        for artifact in self.artifacts:
            for f in artifact.files:
                out.setdefault(f.path, f)
        if self.reference["file"] is not None:
            out.setdefault(self.reference["file"].path, self.reference["file"])
        return list(out.values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``manifest.json`` without its ``manifest_sha256``)."""
        ref = self.reference
        return {
            "schema_version": self.schema_version,
            "model_info": dict(self.model_info),
            "preprocessing": json.loads(json.dumps(self.preprocessing)),
            "input": json.loads(json.dumps(self.input)),
            "outputs": json.loads(json.dumps(self.outputs)),
            "calibration": self.calibration.to_dict(),
            "artifacts": [a.to_dict() for a in self.artifacts],
            "reference": {
                "file": None if ref["file"] is None else ref["file"].to_dict(),
                "metrics": {k: (v if math.isfinite(v) else None) for k, v in ref["metrics"].items()},
                "parity": json.loads(json.dumps(ref["parity"])),
                "data": ref["data"],
                **({"history": json.loads(json.dumps(ref["history"]))} if "history" in ref else {}),
                **({"category": ref["category"]} if "category" in ref else {}),
            },
            "created_utc": self.created_utc,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Manifest:
        """Build from a dict as written by :meth:`to_dict` (or parsed from ``manifest.json``).

        Older schema versions are migrated first; a newer one raises. A ``manifest_sha256``
        key is accepted and ignored here: checking it is the job of the file reader
        (:func:`edgeanomaly.bundle.read_bundle`), which knows which file it came from.

        Raises:
            BundleError: newer schema, or a missing, unknown or invalid field (named).
        """
        if not isinstance(d, Mapping):
            F.fail("", f"expected a JSON object, got {type(d).__name__}")
        check_schema_version(d)
        document = migrate(d)
        document.pop(MANIFEST_SHA256_KEY, None)
        keys = [f.name for f in fields(cls)]
        F.check_keys(document, "", keys)
        obj = object.__new__(cls)
        for key in keys:
            object.__setattr__(obj, key, document[key])
        obj._check(python=False)
        return obj

    def to_json(self) -> str:
        """The text of ``manifest.json``: :meth:`to_dict` plus ``manifest_sha256``, indented."""
        document = self.to_dict()
        document[MANIFEST_SHA256_KEY] = content_sha256(document)
        text = json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False)
        # Shapes and ranges on one line each, for people reading the file; kept only if the
        # compact text parses to the same document.
        compact = _SCALAR_ARRAY.sub(lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text)
        if json.loads(compact) == document:
            text = compact
        return text + "\n"
