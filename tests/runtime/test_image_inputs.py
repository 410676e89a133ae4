"""Which files are images, and which images are too small to score (issue 20.7).

- A 1x1 image used to be upsampled to the model size and scored (0.86, anomalous) without a
  word: an image whose shorter side is below :func:`min_image_side` is refused with a clear
  per-file error that counts as a failure (CLI exit 3; ``ImageReadError`` in Python).
- ``.webp``/``.gif`` given as an argument were opened as videos, and skipped inside a folder:
  every format OpenCV decodes is an image, as an argument and in a folder; files in a folder
  that are not images are counted and reported, not skipped in silence.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import part_image, write_rgb

from edgeanomaly.cli._predict import predict
from edgeanomaly.errors import ImageReadError


def _lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def _write(path: Path, rgb: np.ndarray) -> Path:
    ok, buf = cv2.imencode(path.suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok, path.suffix
    path.write_bytes(buf.tobytes())
    return path


def test_min_image_side_rule() -> None:
    from edgeanomaly.runtime import min_image_side

    assert min_image_side((256, 256)) == 32  # an eighth of the model's shorter side
    assert min_image_side((64, 80)) == 16    # and never below 16 pixels
    assert min_image_side((224, 320)) == 28


def test_tiny_image_is_refused_and_counted(seg_bundle: Path, tmp_path: Path) -> None:
    folder = tmp_path / "parts"
    write_rgb(folder / "a_good.png", part_image(64, 80, seed=1))
    write_rgb(folder / "b_one_pixel.png", part_image(1, 1, seed=2))
    write_rgb(folder / "c_thin.png", part_image(15, 200, seed=3))   # toy model input 64x80: minimum side 16
    write_rgb(folder / "d_just_enough.png", part_image(16, 200, seed=4))
    r = CliRunner().invoke(predict, [str(seg_bundle), str(folder), "--json"])
    assert r.exit_code == 3, r.output
    by_name = {Path(x["path"]).name: x for x in _lines(r.output) if "path" in x}
    for name, (h, w) in {"b_one_pixel.png": (1, 1), "c_thin.png": (15, 200)}.items():
        err = by_name[name]["error"]
        assert "score" not in by_name[name] and f"{w}x{h}" in err and "at least 16 pixels" in err, err
    assert "score" in by_name["a_good.png"] and "score" in by_name["d_just_enough.png"]
    summary = _lines(r.output)[-1]["summary"]
    assert summary["failed"] == 2 and summary["scored"] == 2


def test_tiny_array_is_refused_in_python(seg_bundle: Path) -> None:
    from edgeanomaly.runtime import load

    with load(seg_bundle) as det:
        with pytest.raises(ImageReadError, match="1x1 pixels"):
            det.predict(np.zeros((1, 1, 3), np.uint8))
        assert det.predict(part_image(16, 20, seed=0)).score >= 0.0


@pytest.mark.parametrize("suffix", [".webp", ".gif", ".ppm", ".tif"])
def test_every_format_opencv_decodes_is_an_image_argument(seg_bundle: Path, tmp_path: Path, suffix: str) -> None:
    image = _write(tmp_path / f"part{suffix}", part_image(64, 80, seed=5))
    r = CliRunner().invoke(predict, [str(seg_bundle), str(image), "--json"])
    assert r.exit_code == 0, r.output
    (line,) = [x for x in _lines(r.output) if "path" in x]
    assert "score" in line and "frame" not in line


def test_folder_takes_webp_gif_and_reports_other_files(seg_bundle: Path, tmp_path: Path) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    for suffix in (".png", ".webp", ".gif"):
        _write(folder / f"p{suffix}", part_image(64, 80, seed=6))
    (folder / "notes.txt").write_text("shift 3")
    (folder / "broken.webp").write_bytes(b"RIFF\x10\x00\x00\x00WEBPVP8 garbage")
    r = CliRunner().invoke(predict, [str(seg_bundle), str(folder), "--json"])
    assert r.exit_code == 3, r.output
    lines = _lines(r.output)
    by_name = {Path(x["path"]).name: x for x in lines if "path" in x}
    assert {n for n, x in by_name.items() if "score" in x} == {"p.png", "p.webp", "p.gif"}
    assert "error" in by_name["broken.webp"] and "Traceback" not in r.output
    summary = lines[-1]["summary"]
    assert summary["scored"] == 3 and summary["failed"] == 1 and summary["not_images"] == {".txt": 1}
    assert "1 file that is not an image" in r.output and "notes.txt" in r.output


@pytest.mark.parametrize("as_glob", [False, True])
def test_a_link_whose_target_is_missing_is_a_failed_input_not_skipped(seg_bundle: Path, tmp_path: Path, as_glob: bool) -> None:
    # A folder's link to an image on an unmounted share was left out in silence ("1/1 scored")
    folder = tmp_path / "parts"
    folder.mkdir()
    _write(folder / "p.png", part_image(64, 80, seed=6))
    (folder / "gone.png").symlink_to(tmp_path / "share" / "gone.png")
    (folder / "gone.txt").symlink_to(tmp_path / "share" / "gone.txt")
    source = str(folder / "*") if as_glob else str(folder)
    r = CliRunner().invoke(predict, [str(seg_bundle), source, "--json"])
    assert r.exit_code == 3, r.output
    lines = _lines(r.output)
    by_name = {Path(x["path"]).name: x for x in lines if "path" in x}
    assert "score" in by_name["p.png"] and "error" in by_name["gone.png"] and "Traceback" not in r.output
    assert "a link to" in by_name["gone.png"]["error"] and "share/gone.png, which is missing" in by_name["gone.png"]["error"]
    summary = lines[-1]["summary"]
    assert summary["scored"] == 1 and summary["failed"] == 1 and summary["not_images"] == {".txt": 1}, summary
