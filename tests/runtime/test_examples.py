"""The device-side examples behave like the CLI (issue 14.7): run as a user runs them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from conftest import part_image, write_rgb

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(name: str, *args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(EXAMPLES / name), *map(str, args)], capture_output=True, text=True, timeout=300)


def test_predict_on_device_reports_a_corrupt_image_and_goes_on(seg_bundle: Path, tmp_path: Path) -> None:
    write_rgb(tmp_path / "good" / "a.png", part_image(70, 90, seed=1))
    write_rgb(tmp_path / "dent" / "a.png", part_image(70, 90, defect=(20, 20, 25, 25), seed=2))
    data = (tmp_path / "good" / "a.png").read_bytes()
    (tmp_path / "dent" / "b_truncated.png").write_bytes(data[: len(data) // 3])
    proc = run_example("predict_on_device.py", seg_bundle, tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stdout.splitlines()[1:]
    assert [line.split(":")[0] for line in lines] == [str(tmp_path / p) for p in ("dent/a.png", "dent/b_truncated.png", "good/a.png")]
    assert "ANOMALOUS" in lines[0] and "ERROR" in lines[1] and "truncated" in lines[1] and " ok " in lines[2]
    assert "2/3 scored, 1 failed" in proc.stderr


def test_stream_camera_show_on_headless_opencv_says_what_to_install(seg_bundle: Path, tmp_path: Path) -> None:
    if not re.search(r"GUI:\s+NONE", cv2.getBuildInformation()):
        pytest.skip("this OpenCV has GUI support: --show would open a window")
    write_rgb(tmp_path / "a.png", part_image(70, 90, seed=1))
    proc = run_example("stream_camera.py", seg_bundle, tmp_path, "--show")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "pip install opencv-python" in proc.stderr and "headless" in proc.stderr
