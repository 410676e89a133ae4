"""`edgeanomaly predict` and `edgeanomaly calibrate` through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import part_image, write_rgb
from edgeanomaly.cli._calibrate import calibrate
from edgeanomaly.cli._predict import EXIT_SOME_FAILED, predict


def _lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


@pytest.fixture()
def parts(tmp_path: Path) -> Path:
    folder = tmp_path / "parts"
    write_rgb(folder / "a_good.png", part_image(70, 90, seed=1))
    write_rgb(folder / "b_defect.png", part_image(70, 90, defect=(20, 20, 25, 25), seed=2))
    data = (folder / "a_good.png").read_bytes()
    (folder / "c_truncated.png").write_bytes(data[: len(data) // 3])
    (folder / "d_text.png").write_text("this is not an image")
    write_rgb(folder / "e_good.png", part_image(33, 47, seed=3))
    return folder


@pytest.mark.parametrize("batch_size", [1, 2])
def test_predict_folder_reports_bad_files_and_continues(seg_bundle: Path, parts: Path, batch_size: int) -> None:
    result = CliRunner().invoke(predict, [str(seg_bundle), str(parts), "--json", "--batch-size", str(batch_size)])
    assert result.exit_code == EXIT_SOME_FAILED, result.output
    lines = _lines(result.output)
    assert [Path(r["path"]).name for r in lines[:-1]] == ["a_good.png", "b_defect.png", "c_truncated.png", "d_text.png", "e_good.png"]
    good, defect, truncated, text, small = lines[:5]
    assert good["label"] is False and defect["label"] is True and small["label"] is False
    assert "truncated" in truncated["error"] and "c_truncated.png" in truncated["error"]
    assert "Not an image" in text["error"]
    assert set(good["timings_ms"]) >= {"decode", "preprocess", "infer", "postprocess", "total"}
    summary = lines[-1]["summary"]
    assert (summary["inputs"], summary["scored"], summary["failed"], summary["anomalous"]) == (5, 3, 2, 1)
    assert summary["precision"] == "fp32 (f32 execution)" and summary["backend"] == "openvino"


def test_predict_single_image_with_overlays_and_glob(seg_bundle: Path, parts: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    runner = CliRunner()
    result = runner.invoke(predict, [str(seg_bundle), str(parts / "b_defect.png"), "--out", str(out), "--save-overlays", "--backend", "onnxruntime"])
    assert result.exit_code == 0, result.output
    assert (out / "overlays" / "b_defect.png").is_file()
    records = _lines((out / "predictions.jsonl").read_text())
    assert records[0]["label"] is True and records[-1]["summary"]["backend"] == "onnxruntime"
    result = runner.invoke(predict, [str(seg_bundle), str(parts / "*good.png"), "--json"])
    assert result.exit_code == 0, result.output
    assert [Path(r["path"]).name for r in _lines(result.output)[:-1]] == ["a_good.png", "e_good.png"]


def test_predict_usage_errors(seg_bundle: Path, parts: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(predict, [str(seg_bundle), str(parts), "--save-overlays"])
    assert result.exit_code == 2 and "--out" in result.output
    result = runner.invoke(predict, [str(seg_bundle), str(parts), "--device", "GPU"])
    assert result.exit_code == 1 and "Available: CPU" in result.output


def _mvtec(root: Path, labelled: bool) -> Path:
    for i in range(6):
        write_rgb(root / "train" / "good" / f"{i:03d}.png", part_image(64, 80, seed=100 + i))
    if labelled:
        for i in range(3):
            write_rgb(root / "test" / "good" / f"{i:03d}.png", part_image(64, 80, seed=200 + i))
            img = part_image(64, 80, defect=(10 + 5 * i, 20, 16, 16), seed=300 + i)
            write_rgb(root / "test" / "square" / f"{i:03d}.png", img)
            mask = np.zeros((64, 80), np.uint8)
            mask[10 + 5 * i : 26 + 5 * i, 20:36] = 255
            import cv2

            (root / "ground_truth" / "square").mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / "ground_truth" / "square" / f"{i:03d}_mask.png"), mask)
    return root


@pytest.mark.parametrize("labelled", [False, True])
def test_calibrate_rewrites_manifest_with_history(seg_bundle_copy: Path, tmp_path: Path, labelled: bool) -> None:
    from edgeanomaly.bundle import read_bundle
    from edgeanomaly.runtime import load

    data = _mvtec(tmp_path / "data", labelled)
    with read_bundle(seg_bundle_copy) as b:
        before = b.manifest.calibration
    result = CliRunner().invoke(calibrate, [str(seg_bundle_copy), "--data", str(data), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    with read_bundle(seg_bundle_copy) as b:  # verifies checksums again
        after = b.manifest.calibration
    assert after.method == ("f1_adaptive" if labelled else "quantile")
    assert after.source["n_images"] == (6 if labelled else 6) and after.source["n_anomalous"] == (3 if labelled else 0)
    assert len(after.history) == 1 and after.history[0]["image_threshold"] == before.image_threshold
    assert report["new"]["image_threshold"] == after.image_threshold
    with load(seg_bundle_copy) as det:
        assert det.calibration.image_threshold == after.image_threshold
        normal = det.predict(part_image(64, 80, seed=999))
        defect = det.predict(part_image(64, 80, defect=(20, 20, 16, 16), seed=998, color=(255, 0, 0)))  # stronger than any calibration defect
        assert not normal.label and defect.label


def test_calibrate_dry_run_leaves_bundle_unchanged(seg_bundle_copy: Path, tmp_path: Path) -> None:
    manifest = (seg_bundle_copy / "manifest.json").read_bytes()
    data = _mvtec(tmp_path / "data", labelled=False)
    result = CliRunner().invoke(calibrate, [str(seg_bundle_copy), "--data", str(data), "--dry-run", "--quantile", "0.5"])
    assert result.exit_code == 0, result.output
    assert "quantile 0.5" in result.output and "dry run" in result.output
    assert (seg_bundle_copy / "manifest.json").read_bytes() == manifest


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    """Same file names in different folders, as in an MVTec test split: test/{good,dent}/000.png."""
    root = tmp_path / "test"
    for folder, defect in (("good", None), ("dent", (20, 20, 25, 25))):
        for i in range(2):
            write_rgb(root / folder / f"{i:03d}.png", part_image(70, 90, defect=defect, seed=10 + i))
    return root


def test_predict_overlays_mirror_the_input_tree(seg_bundle: Path, tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(predict, [str(seg_bundle), str(tree / "*" / "*.png"), "--out", str(out), "--save-overlays", "--json"])
    assert result.exit_code == 0, result.output
    records = _lines(result.output)[:-1]
    overlays = sorted(p.relative_to(out / "overlays").as_posix() for p in (out / "overlays").rglob("*.png"))
    assert overlays == ["dent/000.png", "dent/001.png", "good/000.png", "good/001.png"]
    assert sorted(Path(r["overlay"]).relative_to(out / "overlays").as_posix() for r in records) == overlays


def test_predict_never_overwrites_earlier_outputs(seg_bundle: Path, tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [str(seg_bundle), str(tree / "good"), "--out", str(out), "--save-overlays"]
    assert CliRunner().invoke(predict, args).exit_code == 0
    before = (out / "predictions.jsonl").read_bytes()
    result = CliRunner().invoke(predict, args)
    assert result.exit_code == 1 and "--overwrite" in result.output, result.output
    assert (out / "predictions.jsonl").read_bytes() == before
    assert CliRunner().invoke(predict, args + ["--overwrite"]).exit_code == 0


def test_predict_folder_is_searched_recursively(seg_bundle: Path, tree: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(predict, [str(seg_bundle), str(tree), "--json"])
    assert result.exit_code == 0, result.output
    names = [Path(r["path"]).relative_to(tree).as_posix() for r in _lines(result.output)[:-1]]
    assert names == ["dent/000.png", "dent/001.png", "good/000.png", "good/001.png"]
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "notes.txt").write_text("x")
    result = CliRunner().invoke(predict, [str(seg_bundle), str(empty)])
    assert result.exit_code == 1
    assert "No image files" in result.output and ".png" in result.output and "**" in result.output, result.output
