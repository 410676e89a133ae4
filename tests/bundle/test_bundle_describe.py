"""describe_bundle: the text of `edgeanomaly info`."""

from __future__ import annotations

from pathlib import Path

from bundle_fakes import calibration, files, manifest

from edgeanomaly.bundle import describe_bundle, read_bundle, update_calibration, write_bundle


def test_describe_mentions_the_key_facts(bundle_dir: Path) -> None:
    update_calibration(bundle_dir, calibration(image_threshold=4.5, created_utc="2026-03-01T08:00:00Z"))
    with read_bundle(bundle_dir) as bundle:
        text = describe_bundle(bundle)
    for fact in [
        str(bundle_dir),
        "schema 1",
        "patchcore (segmentation)",
        "efficientnet_lite0",
        "blocks.2,blocks.4",
        "image float32 [-1, 3, 32, 48] NCHW RGB in [0, 1], dynamic batch",
        "ImageNet mean/std applied inside the graph",
        "resize to 32x48",
        "anomaly_map [-1, 1, 32, 48]",
        "f1_adaptive on split 'val' of synthetic/bottle: 30 images (20 normal, 10 anomalous)",
        "image threshold 4.5, range [0.5, 8]",
        "pixel threshold 2.5, range [0, 9.5]",
        "history: 1 earlier calibration",
        "openvino-fp16  openvino  fp16",
        "reference.npz (3 images",
        "image_auroc 0.987",
        "parity openvino-fp32: max_abs_pred_score 1.5e-06",
        "Checksums    ok: manifest.json and 6 files verified",
    ]:
        assert fact in text, f"{fact!r} not in:\n{text}"


def test_describe_shows_checksum_problems_of_an_unverified_bundle(bundle_dir: Path) -> None:
    (bundle_dir / "openvino-fp16" / "model.bin").write_bytes(b"x" * 1024)
    path = bundle_dir / "manifest.json"
    path.write_text(path.read_text("utf-8").replace('"image_threshold": 3.25', '"image_threshold": 3.0'), "utf-8")
    with read_bundle(bundle_dir, verify=False) as bundle:
        text = describe_bundle(bundle)
    assert "openvino-fp16/model.bin: SHA256 MISMATCH" in text
    assert "Checksums    FAILED (manifest.json: MODIFIED)" in text
    assert "artifact file openvino-fp16/model.bin has sha256" in text


def test_describe_classification_static_batch(tmp_path: Path) -> None:
    content = files()
    del content["reference.npz"]
    out = write_bundle(tmp_path / "cls", manifest("classification", static_batch=1, reference={"metrics": {"image_auroc": float("nan")}}), content)
    with read_bundle(out) as bundle:
        text = describe_bundle(bundle)
    assert "patchcore (classification)" in text and "static batch 1" in text
    assert "pixel threshold" not in text and "anomaly_map" not in text
    assert "no reference outputs file" in text and "image_auroc undefined" in text
