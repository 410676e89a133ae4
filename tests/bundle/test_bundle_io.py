"""Writing, reading, zipping and verifying bundles on disk; every failure names the file."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from bundle_fakes import calibration, files, manifest, rewrite_manifest

from edgeanomaly.bundle import (
    Artifact,
    ArtifactFile,
    Bundle,
    Manifest,
    pack_bundle,
    read_bundle,
    update_calibration,
    verify_bundle,
    write_bundle,
)
from edgeanomaly.bundle import _io
from edgeanomaly.errors import BundleError, BundleIntegrityError


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# ------------------------------------------------------------------------- round trips


def test_write_then_read_directory(bundle_dir: Path) -> None:
    assert (bundle_dir / "manifest.json").is_file()
    with read_bundle(bundle_dir) as bundle:
        assert bundle.verified and bundle.root == bundle_dir
        assert bundle.manifest.calibration == calibration()
        onnx = bundle.artifact(name="onnx-fp32")
        assert [f.path for f in onnx.files] == ["model.onnx"]
        assert onnx.files[0].bytes == len(files()["model.onnx"])
        ov = bundle.artifact(format="openvino")
        assert ov.name == "openvino-fp32"  # fp32 preferred when precision is not asked for
        assert [f.path for f in ov.files] == ["openvino/model.xml", "openvino/model.bin"]
        assert bundle.artifact(format="openvino", precision="fp16").name == "openvino-fp16"
        assert bundle.path(ov).read_bytes() == files()["openvino/model.xml"]
        assert bundle.path("onnx-fp32") == bundle_dir / "model.onnx"
        ref = bundle.reference()
        assert ref is not None and ref["anomaly_map"].shape == (3, 1, 32, 48)
        assert ref["names"].tolist() == ["img0.png", "img1.png", "img2.png"]
        assert bundle.manifest.reference["file"].path == "reference.npz"
    assert _leftovers(bundle_dir.parent) == []


def test_unknown_artifact_request_lists_what_exists(bundle_dir: Path) -> None:
    with read_bundle(bundle_dir) as bundle, pytest.raises(BundleError, match="openvino-fp16 \\(openvino, fp16\\)"):
        bundle.artifact(precision="int8")


def test_write_zip_and_read_it_back(tmp_path: Path) -> None:
    out = write_bundle(tmp_path / "b.zip", manifest(), files())
    assert zipfile.is_zipfile(out) and not (tmp_path / "b").exists()
    assert _leftovers(tmp_path) == []
    with zipfile.ZipFile(out) as zf:
        assert zf.namelist()[0] == "manifest.json"
    bundle = read_bundle(out)
    root = bundle.root
    assert root.is_dir() and root != tmp_path
    assert bundle.path("openvino-fp16").read_bytes() == files()["openvino-fp16/model.xml"]
    bundle.close()
    assert not root.exists()
    with pytest.raises(BundleError, match="closed"):
        bundle.path("onnx-fp32")


def test_pack_bundle_is_reproducible(bundle_dir: Path, tmp_path: Path) -> None:
    a = pack_bundle(bundle_dir, tmp_path / "a.zip")
    b = pack_bundle(bundle_dir, tmp_path / "b.zip")
    assert a.read_bytes() == b.read_bytes()
    with pytest.raises(BundleError, match="already exists"):
        pack_bundle(bundle_dir, a)
    pack_bundle(bundle_dir, a, overwrite=True)
    assert verify_bundle(a) == []


def test_zip_of_a_folder_is_accepted(bundle_dir: Path, tmp_path: Path) -> None:
    archive = tmp_path / "folder.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(bundle_dir.rglob("*")):
            if p.is_file():
                zf.write(p, f"bundle/{p.relative_to(bundle_dir).as_posix()}")
    with read_bundle(archive) as bundle:
        assert bundle.root.name == "bundle"


def test_file_sources_may_be_paths_and_external_data_is_collected(tmp_path: Path) -> None:
    graph = tmp_path / "graph.onnx"
    graph.write_bytes(b"graph")
    m = manifest(artifacts=[Artifact("onnx-fp32", "onnx", "fp32", "model.onnx")], reference={})
    out = write_bundle(tmp_path / "b", m, {"model.onnx": graph, "model.onnx.data": b"weights"})
    with read_bundle(out) as bundle:
        assert [f.path for f in bundle.artifact().files] == ["model.onnx", "model.onnx.data"]
        assert bundle.reference() is None


def test_unlisted_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="notes.txt"):
        write_bundle(tmp_path / "b", manifest(), {**files(), "notes.txt": b"hi"})
    assert not (tmp_path / "b").exists() and _leftovers(tmp_path) == []


def test_listed_file_without_content_is_refused(tmp_path: Path) -> None:
    content = files()
    del content["openvino-fp16/model.bin"]
    fp16 = Artifact(
        "openvino-fp16", "openvino", "fp16", "openvino-fp16/model.xml",
        files=[ArtifactFile("openvino-fp16/model.xml"), ArtifactFile("openvino-fp16/model.bin")],
    )
    m = manifest(artifacts=[*manifest().artifacts[:2], fp16])
    with pytest.raises(BundleError, match="openvino-fp16/model.bin"):
        write_bundle(tmp_path / "b", m, content)
    assert list(tmp_path.iterdir()) == []


def test_precomputed_checksum_that_disagrees_is_refused(tmp_path: Path) -> None:
    m = manifest(artifacts=[Artifact("onnx-fp32", "onnx", "fp32", "model.onnx", files=[ArtifactFile("model.onnx", "0" * 64, 0)])], reference={})
    with pytest.raises(BundleIntegrityError, match="model.onnx"):
        write_bundle(tmp_path / "b", m, {"model.onnx": b"x"})


def test_unsafe_file_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="'..'"):
        write_bundle(tmp_path / "b", manifest(), {**files(), "../evil": b"x"})
    assert not (tmp_path / "evil").exists()


# ------------------------------------------------------------------------- corruption -> named file


def test_one_corrupted_byte_names_the_file(bundle_dir: Path) -> None:
    target = bundle_dir / "openvino" / "model.bin"
    data = bytearray(target.read_bytes())
    data[100] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(BundleIntegrityError) as info:
        read_bundle(bundle_dir)
    message = str(info.value)
    assert str(bundle_dir) in message and "artifact file openvino/model.bin has sha256" in message
    assert "manifest.json records" in message and "Re-export" in message
    # verify=False hashes nothing: the size still matches, so it opens
    read_bundle(bundle_dir, verify=False).close()


def test_truncated_file_names_the_file_even_without_hashing(bundle_dir: Path) -> None:
    target = bundle_dir / "model.onnx"
    target.write_bytes(target.read_bytes()[:-1])
    with pytest.raises(BundleIntegrityError, match="model.onnx has .* bytes but manifest.json records"):
        read_bundle(bundle_dir, verify=False)


def test_deleted_file_names_the_file(bundle_dir: Path) -> None:
    (bundle_dir / "openvino-fp16" / "model.xml").unlink()
    with pytest.raises(BundleIntegrityError, match=r"openvino-fp16/model\.xml \(artifact 'openvino-fp16'\) .* is missing"):
        read_bundle(bundle_dir)


def test_deleted_reference_names_the_file(bundle_dir: Path) -> None:
    (bundle_dir / "reference.npz").unlink()
    with pytest.raises(BundleIntegrityError, match="reference file reference.npz"):
        read_bundle(bundle_dir)


def test_corrupted_member_inside_a_zip_names_the_file(tmp_path: Path) -> None:
    out = write_bundle(tmp_path / "b.zip", manifest(), {**files(), "openvino/model.bin": bytes(4096)})
    data = bytearray(out.read_bytes())
    # The 4096 zero bytes deflate to a short run; flip a byte inside the member's data.
    with zipfile.ZipFile(out) as zf:
        info = zf.getinfo("openvino/model.bin")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + info.compress_size // 2] ^= 0x55
    out.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="openvino/model.bin"):
        read_bundle(out)


def test_missing_manifest(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match=r"is not an edgeanomaly bundle: manifest.json not found"):
        read_bundle(tmp_path / "empty")


def test_missing_path_and_non_zip_file(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="not found"):
        read_bundle(tmp_path / "nope")
    (tmp_path / "x.zip").write_bytes(b"not a zip")
    with pytest.raises(BundleError, match="not an edgeanomaly bundle"):
        read_bundle(tmp_path / "x.zip")


def test_hand_edited_threshold_names_manifest(bundle_dir: Path) -> None:
    path = bundle_dir / "manifest.json"
    path.write_text(path.read_text("utf-8").replace('"image_threshold": 3.25', '"image_threshold": 3.5'), "utf-8")
    with pytest.raises(BundleIntegrityError) as info:
        read_bundle(bundle_dir)
    message = str(info.value)
    assert "manifest.json was modified after it was written" in message and str(bundle_dir) in message
    assert "update_calibration" in message
    # the escape hatch for inspecting it
    with read_bundle(bundle_dir, verify=False) as bundle:
        assert bundle.manifest.calibration.image_threshold == 3.5


def test_reformatting_the_manifest_keeps_it_valid(bundle_dir: Path) -> None:
    path = bundle_dir / "manifest.json"
    document = json.loads(path.read_text("utf-8"))
    path.write_text(json.dumps(dict(reversed(list(document.items()))), indent=7), "utf-8")
    read_bundle(bundle_dir).close()


def test_manifest_without_checksum_is_refused(bundle_dir: Path) -> None:
    rewrite_manifest(bundle_dir, lambda d: d.pop("manifest_sha256"), rehash=False)
    with pytest.raises(BundleIntegrityError, match="'manifest_sha256' is missing"):
        read_bundle(bundle_dir)


def test_malformed_json_gives_position(bundle_dir: Path) -> None:
    path = bundle_dir / "manifest.json"
    path.write_text(path.read_text("utf-8")[:-40], "utf-8")
    with pytest.raises(BundleError, match=r"\(manifest.json\): malformed JSON at line \d+, column \d+"):
        read_bundle(bundle_dir)


def test_nan_in_manifest_is_malformed(bundle_dir: Path) -> None:
    path = bundle_dir / "manifest.json"
    path.write_text(path.read_text("utf-8").replace('"image_min": 0.5', '"image_min": NaN'), "utf-8")
    with pytest.raises(BundleError, match="malformed JSON: NaN"):
        read_bundle(bundle_dir)


def test_newer_schema_on_disk(bundle_dir: Path) -> None:
    rewrite_manifest(bundle_dir, lambda d: d.update(schema_version=2, hypothetical_new_field={}), rehash=False)
    with pytest.raises(BundleError) as info:
        read_bundle(bundle_dir)
    assert "manifest.json" in str(info.value)
    assert "written by a newer edgeanomaly (schema 2); this version reads schema <= 1. Upgrade edgeanomaly." in str(info.value)


def test_unknown_format_on_disk(bundle_dir: Path) -> None:
    rewrite_manifest(bundle_dir, lambda d: d["artifacts"][0].update(format="tflite"))
    with pytest.raises(BundleError, match=r"manifest.json\): invalid field 'artifacts\[0\].format': expected one of 'onnx', 'openvino', got 'tflite'"):
        read_bundle(bundle_dir)


@pytest.mark.parametrize("path", ["../outside.bin", "/etc/passwd"])
def test_path_traversal_in_manifest_is_refused(bundle_dir: Path, path: str) -> None:
    (bundle_dir.parent / "outside.bin").write_bytes(b"secret")
    rewrite_manifest(bundle_dir, lambda d: d["artifacts"][1]["files"][1].update(path=path))
    with pytest.raises(BundleError, match=r"artifacts\[1\]\.files\[1\]\.path"):
        read_bundle(bundle_dir)


def test_symlink_escaping_the_bundle_is_refused(bundle_dir: Path) -> None:
    outside = bundle_dir.parent / "outside.bin"
    target = bundle_dir / "openvino" / "model.bin"
    outside.write_bytes(target.read_bytes())
    target.unlink()
    try:
        target.symlink_to(outside)
    except OSError:
        pytest.skip("symbolic links not available")
    with pytest.raises(BundleIntegrityError, match="openvino/model.bin resolves outside the bundle"):
        read_bundle(bundle_dir)


@pytest.mark.parametrize("member", ["../evil.txt", "/abs/evil.txt", "a/../../evil.txt"])
def test_zip_slip_is_refused(tmp_path: Path, member: str) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("manifest.json", "{}")
        zf.writestr(member, "gotcha")
    with pytest.raises(BundleError, match="refusing to extract"):
        read_bundle(archive)
    assert not (tmp_path / "evil.txt").exists()


def test_zip_symlink_member_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "link.zip"
    info = zipfile.ZipInfo("model.onnx")
    info.external_attr = (0o120777) << 16
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(BundleError, match="symbolic link"):
        read_bundle(archive)


def test_extraction_dir_is_removed_when_reading_a_zip_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    out = write_bundle(tmp_path / "b.zip", manifest(), {**files(), "model.onnx": b"A" * 100})
    with zipfile.ZipFile(out) as zf, zipfile.ZipFile(tmp_path / "bad.zip", "w") as bad:
        for name in zf.namelist():
            bad.writestr(name, b"B" * 100 if name == "model.onnx" else zf.read(name))
    with pytest.raises(BundleIntegrityError, match="model.onnx"):
        read_bundle(tmp_path / "bad.zip")
    assert list(scratch.iterdir()) == []


# ------------------------------------------------------------------------- verify_bundle


def test_verify_bundle_reports_every_problem(bundle_dir: Path, tmp_path: Path) -> None:
    assert verify_bundle(bundle_dir) == []
    (bundle_dir / "model.onnx").write_bytes(b"tampered")
    (bundle_dir / "openvino" / "model.xml").unlink()
    path = bundle_dir / "manifest.json"
    path.write_text(path.read_text("utf-8").replace('"image_threshold": 3.25', '"image_threshold": 1.0'), "utf-8")
    problems = verify_bundle(bundle_dir)
    assert len(problems) == 3
    assert "manifest.json was modified" in problems[0]
    assert "model.onnx has 8 bytes" in problems[1]
    assert "openvino/model.xml" in problems[2] and "missing" in problems[2]
    assert verify_bundle(tmp_path / "missing") == [f"Bundle {tmp_path / 'missing'} not found: no such file or directory"]


# ------------------------------------------------------------------------- atomic writing


def _fail_on_nth_write(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    original = _io._write_file
    calls = {"n": 0}

    def flaky(stage: Path, rel: str, source):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == n:
            raise OSError(28, "No space left on device (injected)")
        return original(stage, rel, source)

    monkeypatch.setattr(_io, "_write_file", flaky)


def test_failure_mid_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fail_on_nth_write(monkeypatch, 3)
    with pytest.raises(OSError, match="injected"):
        write_bundle(tmp_path / "b", manifest(), files())
    assert list(tmp_path.iterdir()) == []


def test_failure_mid_overwrite_keeps_the_old_bundle(bundle_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = {p.relative_to(bundle_dir): p.read_bytes() for p in bundle_dir.rglob("*") if p.is_file()}
    _fail_on_nth_write(monkeypatch, 4)
    new = {**files(), "model.onnx": b"a new graph"}
    with pytest.raises(OSError, match="injected"):
        write_bundle(bundle_dir, manifest(), new, overwrite=True)
    after = {p.relative_to(bundle_dir): p.read_bytes() for p in bundle_dir.rglob("*") if p.is_file()}
    assert after == before
    assert _leftovers(bundle_dir.parent) == []
    read_bundle(bundle_dir).close()


def test_failure_while_writing_manifest_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(stage: Path, m: Manifest) -> None:
        raise KeyboardInterrupt  # even an interrupt cleans up

    monkeypatch.setattr(_io, "_write_manifest", boom)
    with pytest.raises(KeyboardInterrupt):
        write_bundle(tmp_path / "b.zip", manifest(), files())
    assert list(tmp_path.iterdir()) == []


def test_failure_mid_zip_keeps_the_old_zip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = write_bundle(tmp_path / "b.zip", manifest(), files())
    before = out.read_bytes()
    _fail_on_nth_write(monkeypatch, 2)
    with pytest.raises(OSError, match="injected"):
        write_bundle(out, manifest(), files(), overwrite=True)
    assert out.read_bytes() == before and _leftovers(tmp_path) == []


def test_existing_destination_needs_overwrite(bundle_dir: Path) -> None:
    with pytest.raises(BundleError, match="already exists; pass overwrite=True"):
        write_bundle(bundle_dir, manifest(), files())
    new = {**files(), "model.onnx": b"a new graph"}
    write_bundle(bundle_dir, manifest(), new, overwrite=True)
    with read_bundle(bundle_dir) as bundle:
        assert bundle.path("onnx-fp32").read_bytes() == b"a new graph"
    assert _leftovers(bundle_dir.parent) == []


def test_overwrite_never_replaces_a_foreign_directory(tmp_path: Path) -> None:
    precious = tmp_path / "photos"
    precious.mkdir()
    (precious / "holiday.jpg").write_bytes(b"jpg")
    with pytest.raises(BundleError, match="not an edgeanomaly bundle"):
        write_bundle(precious, manifest(), files(), overwrite=True)
    assert (precious / "holiday.jpg").read_bytes() == b"jpg"


def test_a_stage_directory_is_never_a_loadable_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulate a crash just before the final rename: the manifest exists only in the hidden stage.
    seen = {}

    def crash(new: Path, dest: Path) -> None:
        seen["stage"] = new
        seen["has_manifest"] = (new / "manifest.json").is_file()
        raise SystemExit("power cut (injected)")

    monkeypatch.setattr(_io, "replace_dir", crash)
    with pytest.raises(SystemExit):
        write_bundle(tmp_path / "b", manifest(), files())
    assert seen["has_manifest"] and seen["stage"].parent == tmp_path and seen["stage"].name.startswith(".b.tmp-")
    assert not (tmp_path / "b").exists()


# ------------------------------------------------------------------------- calibration update


@pytest.mark.parametrize("as_zip", [False, True])
def test_update_calibration_keeps_history_and_verifies(bundle_dir: Path, tmp_path: Path, as_zip: bool) -> None:
    target = pack_bundle(bundle_dir, tmp_path / "b.zip") if as_zip else bundle_dir
    new_cal = calibration(image_threshold=4.5, method="quantile", quantile=0.99,
                          source={"split": "line-3", "n_images": 50, "n_normal": 50, "n_anomalous": 0, "data": "camera 3"},
                          created_utc="2026-03-01T08:00:00Z")
    updated = update_calibration(target, new_cal)
    assert updated.calibration.image_threshold == 4.5
    assert [h["image_threshold"] for h in updated.calibration.history] == [3.25]
    again = update_calibration(target, calibration(image_threshold=5.0))
    assert [h["image_threshold"] for h in again.calibration.history] == [3.25, 4.5]
    assert verify_bundle(target) == []
    with read_bundle(target) as bundle:
        assert bundle.manifest == again
        assert bundle.manifest.artifacts == read_bundle(bundle_dir, verify=False).manifest.artifacts
    assert _leftovers(tmp_path) == [] and _leftovers(bundle_dir) == []


def test_update_calibration_refuses_an_edited_bundle(bundle_dir: Path) -> None:
    (bundle_dir / "model.onnx").write_bytes(b"tampered!")
    with pytest.raises(BundleIntegrityError, match="model.onnx"):
        update_calibration(bundle_dir, calibration())


def test_update_calibration_checks_the_task(bundle_dir: Path) -> None:
    before = (bundle_dir / "manifest.json").read_bytes()
    with pytest.raises(BundleError, match="segmentation model needs pixel"):
        update_calibration(bundle_dir, calibration("classification"))
    assert (bundle_dir / "manifest.json").read_bytes() == before


def test_bundle_is_a_context_manager_and_not_picklable(bundle_dir: Path) -> None:
    import pickle

    with read_bundle(bundle_dir) as bundle:
        assert isinstance(bundle, Bundle) and "patchcore" in repr(bundle)
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(bundle)
    assert bundle.closed and bundle_dir.exists()  # closing a directory bundle deletes nothing


def test_reference_arrays_round_trip(bundle_dir: Path) -> None:
    with read_bundle(bundle_dir) as bundle:
        ref = bundle.reference()
    assert ref is not None
    assert ref["images"].dtype == np.uint8 and ref["pred_score"].dtype == np.float32
