"""Manifest schema v1: round trip, validation that names the field, versions and migration."""

from __future__ import annotations

import copy
import json
import math
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from bundle_fakes import H, W, calibration, manifest, model_info

from edgeanomaly.bundle import (
    SCHEMA_VERSION,
    Artifact,
    ArtifactFile,
    Calibration,
    Manifest,
    input_spec,
    output_specs,
)
from edgeanomaly.bundle import _migrate
from edgeanomaly.errors import BundleError


def _dict() -> dict[str, Any]:
    return manifest().to_dict()


def _error(d: dict[str, Any]) -> str:
    with pytest.raises(BundleError) as info:
        Manifest.from_dict(d)
    return str(info.value)


# ------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("task", ["segmentation", "classification"])
@pytest.mark.parametrize("static_batch", [None, 4])
def test_round_trip_through_json(task: str, static_batch: int | None) -> None:
    m = manifest(task, static_batch=static_batch)
    d = json.loads(json.dumps(m.to_dict(), allow_nan=False))
    back = Manifest.from_dict(d)
    assert back == m
    assert back.to_dict() == d
    assert back.task == task and back.static_batch == static_batch and back.input_size == (H, W)


def test_from_dict_accepts_manifest_sha256_and_to_json_adds_it() -> None:
    m = manifest()
    document = json.loads(m.to_json())
    assert len(document["manifest_sha256"]) == 64
    assert Manifest.from_dict(document) == m


def test_numpy_numbers_become_python_numbers() -> None:
    cal = calibration(image_threshold=np.float32(3.5), image_min=np.float64(0.5), image_max=np.int64(9))
    assert type(cal.image_threshold) is float and type(cal.image_max) is float
    m = manifest(calibration=cal, reference={"metrics": {"image_auroc": np.float32(0.5)}})
    json.dumps(m.to_dict(), allow_nan=False)


def test_nan_metric_is_written_as_null_and_read_back_as_nan() -> None:
    m = manifest(reference={"metrics": {"image_auroc": float("nan")}})
    d = m.to_dict()
    assert d["reference"]["metrics"]["image_auroc"] is None
    assert math.isnan(Manifest.from_dict(d).reference["metrics"]["image_auroc"])


def test_python_reference_defaults_are_filled() -> None:
    m = manifest(reference={})
    assert m.reference == {"file": None, "metrics": {}, "parity": {}, "data": ""}


# ------------------------------------------------------------------------- validation


def test_unknown_top_level_key_suggests_close_match() -> None:
    d = _dict()
    d["calibraton"] = d.pop("calibration")
    message = _error(d)
    assert "'calibraton'" in message and "did you mean 'calibration'" in message


def test_missing_key_is_named() -> None:
    d = _dict()
    del d["calibration"]["image_min"]
    assert "calibration" in _error(d) and "'image_min'" in _error(d)


def test_strict_from_dict_requires_every_reference_key() -> None:
    d = _dict()
    del d["reference"]["parity"]
    assert "reference" in _error(d) and "'parity'" in _error(d)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["calibration"].__setitem__("image_threshold", "3.2"), "calibration.image_threshold"),
        (lambda d: d["calibration"].__setitem__("image_min", 99.0), "calibration.image_min"),
        (lambda d: d["calibration"].__setitem__("method", "otsu"), "calibration.method"),
        (lambda d: d["calibration"].__setitem__("quantile", 0.99), "calibration.quantile"),
        (lambda d: d["calibration"]["source"].__setitem__("n_images", 7), "calibration.source.n_images"),
        (lambda d: d["calibration"].__setitem__("pixel_max", None), "calibration.pixel_threshold"),
        (lambda d: d["artifacts"][1].__setitem__("format", "tflite"), "artifacts[1].format"),
        (lambda d: d["artifacts"][0].__setitem__("precision", "bf16"), "artifacts[0].precision"),
        (lambda d: d["artifacts"][0].__setitem__("path", "model.xml"), "artifacts[0].path"),
        (lambda d: d["artifacts"][0].__setitem__("static_batch", 0), "artifacts[0].static_batch"),
        (lambda d: d["artifacts"][2].__setitem__("name", "openvino-fp32"), "artifacts[2].name"),
        (lambda d: d["artifacts"][0].__setitem__("files", [{"path": "model.onnx", "sha256": "xyz", "bytes": 1}]),
         "artifacts[0].files[0].sha256"),
        (lambda d: d["artifacts"][0].__setitem__("files", [{"path": "model.onnx", "sha256": "", "bytes": True}]),
         "artifacts[0].files[0].bytes"),
        (lambda d: d["model_info"].__setitem__("input_height", 32), "model_info.input_height"),
        (lambda d: d["model_info"].__setitem__("task", "detection"), "model_info.task"),
        (lambda d: d["model_info"].pop("backbone"), "model_info"),
        (lambda d: d["model_info"].__setitem__("input_width", "64"), "model_info.input_height"),
        (lambda d: d["model_info"].__setitem__("preprocessing", "{}"), "model_info.preprocessing"),
        (lambda d: d["preprocessing"].__setitem__("interpolation", "lanczos"), "preprocessing"),
        (lambda d: d["input"].__setitem__("color", "BGR"), "input.color"),
        (lambda d: d["input"].__setitem__("shape", [-1, 3, H, W + 1]), "input.shape"),
        (lambda d: d["input"].__setitem__("value_range", [0, 255]), "input.value_range"),
        (lambda d: d["outputs"].pop(), "outputs"),
        (lambda d: d["outputs"][1].__setitem__("shape", [-1, H, W]), "outputs[1].shape"),
        (lambda d: d["reference"]["metrics"].__setitem__("image_auroc", "high"), "reference.metrics.image_auroc"),
        (lambda d: d.__setitem__("created_utc", "yesterday"), "created_utc"),
    ],
)
def test_invalid_field_is_named(mutate, field: str) -> None:
    d = _dict()
    mutate(d)
    assert f"'{field}'" in _error(d)


def test_unknown_artifact_format_lists_known_formats() -> None:
    d = _dict()
    d["artifacts"][1]["format"] = "tflite"
    message = _error(d)
    assert "'tflite'" in message and "'onnx'" in message and "'openvino'" in message


@pytest.mark.parametrize(
    "path", ["../model.onnx", "/etc/model.onnx", "C:/model.onnx", "a/../../model.onnx", "a\\model.onnx", "./model.onnx", "manifest.json"]
)
def test_paths_must_stay_inside_the_bundle(path: str) -> None:
    d = _dict()
    d["artifacts"][0]["files"] = [{"path": path, "sha256": "", "bytes": 0}]
    assert "'artifacts[0].files[0].path'" in _error(d)
    with pytest.raises(BundleError):
        ArtifactFile(path)


def test_reference_file_path_is_checked() -> None:
    d = _dict()
    d["reference"]["file"] = {"path": "../../secret.npz", "sha256": "", "bytes": 0}
    assert "'reference.file.path'" in _error(d)


def test_openvino_artifact_needs_its_bin_file() -> None:
    with pytest.raises(BundleError, match=r"\.bin"):
        Artifact("ov", "openvino", "fp32", "m.xml", files=[ArtifactFile("m.xml")])


def test_static_batch_must_match_input() -> None:
    with pytest.raises(BundleError, match=r"artifacts\[0\]\.static_batch"):
        manifest(
            input=input_spec(H, W, 8),
            outputs=output_specs("segmentation", H, W, 8),
            artifacts=[Artifact("onnx-fp32", "onnx", "fp32", "model.onnx")],
        )


def test_task_and_calibration_agree() -> None:
    with pytest.raises(BundleError, match="classification model has no anomaly map"):
        manifest("classification", calibration=calibration("segmentation"))
    with pytest.raises(BundleError, match="segmentation model needs pixel"):
        manifest("segmentation", calibration=calibration("classification"))


def test_model_info_values_are_strings() -> None:
    with pytest.raises(BundleError, match="model_info.input_height"):
        manifest(model_info={**model_info(), "input_height": H})


def test_same_file_listed_twice_must_agree() -> None:
    a = Artifact("a", "onnx", "fp32", "m.onnx", files=[ArtifactFile("m.onnx", "a" * 64, 3)])
    b = Artifact("b", "onnx", "fp16", "m.onnx", files=[ArtifactFile("m.onnx", "b" * 64, 3)])
    with pytest.raises(BundleError, match=r"artifacts\[1\]"):
        manifest(artifacts=[a, b])


# ------------------------------------------------------------------------- versions


def test_newer_schema_asks_to_upgrade() -> None:
    d = _dict()
    d["schema_version"] = SCHEMA_VERSION + 1
    message = _error(d)
    assert f"newer edgeanomaly (schema {SCHEMA_VERSION + 1})" in message
    assert f"reads schema <= {SCHEMA_VERSION}" in message and "Upgrade edgeanomaly" in message


@pytest.mark.parametrize("version", ["1", 1.0, True, None])
def test_schema_version_must_be_an_int(version: Any) -> None:
    d = _dict()
    d["schema_version"] = version
    assert "schema_version" in _error(d)


def test_old_schema_without_migration_is_a_clear_error() -> None:
    d = _dict()
    d["schema_version"] = 0
    assert "schema 0" in _error(d) and "Re-export" in _error(d)


def test_registered_migration_upgrades_a_v0_dict(monkeypatch: pytest.MonkeyPatch) -> None:
    # A made-up schema 0 that called the calibration "thresholds" and had no reference.
    def v0_to_v1(d: dict[str, Any]) -> dict[str, Any]:
        d["calibration"] = d.pop("thresholds")
        d["reference"] = {"file": None, "metrics": {}, "parity": {}, "data": ""}
        d["schema_version"] = 1
        return d

    monkeypatch.setattr(_migrate, "MIGRATIONS", {})
    _migrate.register_migration(0)(v0_to_v1)
    v0 = _dict()
    v0["schema_version"] = 0
    v0["thresholds"] = v0.pop("calibration")
    del v0["reference"]
    original = copy.deepcopy(v0)
    m = Manifest.from_dict(v0)
    assert m.schema_version == 1 and m.calibration == calibration()
    assert v0 == original  # the input is not modified
    with pytest.raises(ValueError, match="already registered"):
        _migrate.register_migration(0)(v0_to_v1)


# ------------------------------------------------------------------------- calibration


def test_normalisation_formula_and_threshold_at_half() -> None:
    cal = calibration(image_threshold=4.0, image_min=2.0, image_max=6.0)
    raw = np.array([0.0, 2.0, 4.0, 5.0, 6.0, 100.0], dtype=np.float32)
    got = cal.normalize_score(raw)
    assert got.dtype == np.float32 and got.shape == raw.shape
    np.testing.assert_allclose(got, np.clip((raw - 4.0) / 4.0 + 0.5, 0, 1), rtol=0, atol=1e-7)
    assert got[2] == np.float32(0.5)
    assert isinstance(cal.normalize_score(4.0), np.float32)
    np.testing.assert_array_equal(cal.label_score(raw), raw >= 4.0)


def test_normalize_map_uses_pixel_values_and_keeps_shape() -> None:
    cal = calibration(pixel_threshold=1.0, pixel_min=0.0, pixel_max=2.0)
    maps = np.linspace(-1, 3, 2 * 1 * 4 * 5, dtype=np.float32).reshape(2, 1, 4, 5)
    got = cal.normalize_map(maps)
    assert got.shape == maps.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, np.clip((maps - 1.0) / 2.0 + 0.5, 0, 1), atol=1e-7)
    np.testing.assert_array_equal(cal.mask_map(maps), maps >= 1.0)


def test_equal_min_and_max_use_a_range_of_one() -> None:
    cal = calibration(image_threshold=2.0, image_min=2.0, image_max=2.0)
    np.testing.assert_allclose(cal.normalize_score(np.array([1.75, 2.0, 2.25])), [0.25, 0.5, 0.75])


def test_classification_calibration_has_no_map_normalisation() -> None:
    with pytest.raises(BundleError, match="no anomaly map"):
        calibration("classification").normalize_map(np.zeros((1, 1, 2, 2)))


def test_with_history_appends_previous_newest_last() -> None:
    first = calibration(image_threshold=1.0, created_utc="2026-01-01T00:00:00Z")
    second = calibration(image_threshold=2.0, created_utc="2026-02-01T00:00:00Z").with_history(first)
    third = calibration(image_threshold=3.0, method="quantile", quantile=0.99).with_history(second)
    assert [h["image_threshold"] for h in third.history] == [1.0, 2.0]
    assert all("history" not in h for h in third.history)
    assert Calibration.from_dict(json.loads(json.dumps(third.to_dict()))) == third


def test_history_entries_are_validated() -> None:
    d = calibration().to_dict()
    d["history"] = [{**calibration().history_entry(), "image_min": "low"}]
    with pytest.raises(BundleError, match=r"calibration\.history\[0\]\.image_min"):
        Calibration.from_dict(d)


def test_frozen_objects_change_through_replace() -> None:
    m = manifest()
    with pytest.raises(AttributeError):
        m.created_utc = "2027-01-01T00:00:00Z"  # type: ignore[misc]
    with pytest.raises(BundleError, match="calibration.image_min"):
        replace(m.calibration, image_min=1e9)
