"""The noise of issue 20.15, each reproduced with the command a user runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edgeanomaly.cli import main

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _cli(*args: object, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeanomaly.cli", *map(str, args)], capture_output=True, text=True,
                          env=_env(), timeout=timeout)


def test_missing_file_is_said_not_to_exist(tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    bundle.mkdir()
    r = CliRunner().invoke(main, ["predict", str(bundle), str(tmp_path / "nosuch.png")])
    assert r.exit_code == 2 and "does not exist" in r.output, r.output
    assert "camera index" not in r.output


@pytest.mark.parametrize("args, expected", [
    (["--recipe", "padim", "--data", ".", "--format", "onnxx"], "onnxx"),
    (["--recipe", "padim", "--data", ".", "--precision", "fp64"], "fp64"),
    (["--recipe", "nosuchrecipe", "--data", "."], "nosuchrecipe"),
])
def test_export_argument_errors_come_before_torch(args: list[str], expected: str) -> None:
    """They took ~9 s: torch was imported first."""
    code = ("import sys\nfrom edgeanomaly.cli import main\n"
            f"try:\n    main(['export', '--out', 'x.bundle', *{args!r}], prog_name='edgeanomaly')\n"
            "except SystemExit as e:\n    print('exit', e.code)\nprint('torch imported:', 'torch' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=300)
    assert "exit 1" in r.stdout and expected in r.stderr, (r.stdout, r.stderr)
    assert "torch imported: False" in r.stdout, "an argument error should not wait for torch to import"


def test_truncated_png_gives_one_clean_line_and_no_libpng_noise(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    ok, buf = cv2.imencode(".png", np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    data = buf.tobytes()
    bad = tmp_path / "cut.png"
    bad.write_bytes(data[: int(len(data) * 0.9)])  # inside the last IDAT: libpng printed "PNG input buffer is incomplete"
    from edgeanomaly.data import read_image
    from edgeanomaly.errors import ImageReadError

    with pytest.raises(ImageReadError, match="truncated"):
        read_image(bad)
    # the C-level stderr of the process, where libpng writes
    code = ("from edgeanomaly.data import read_image\ntry:\n    read_image(%r)\nexcept Exception as e:\n    print('error:', e)\n" % str(bad))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=120)
    assert "truncated" in r.stdout and "libpng" not in r.stderr, r.stderr


@pytest.mark.slow
def test_info_is_readable(small_dfm_bundle: Path) -> None:
    r = CliRunner().invoke(main, ["info", str(small_dfm_bundle)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "{'" not in r.output and "[{" not in r.output, r.output  # no raw Python dicts
    assert max(len(line) for line in r.output.splitlines()) < 400, r.output
    assert "verdict PASS" in r.output


@pytest.mark.slow
def test_undefined_metric_is_a_note_not_a_python_warning(small_dfm_bundle: Path, synthetic_root: Path, tmp_path: Path) -> None:
    # validate --out draws PIMO curves; 6 normal test images at 128 px are too few normal pixels
    # for AUPIMO's FPR range: Python printed the warning twice, with _pimo.py's file and line
    r = _cli("validate", small_dfm_bundle, "--data", synthetic_root, "--category", "metal", "--out", tmp_path / "rep")
    assert r.returncode == 0, r.stderr
    assert "UndefinedMetricWarning" not in r.stderr and "_pimo.py" not in r.stderr, r.stderr
    assert r.stderr.count("note: AUPIMO is undefined") == 1, r.stderr
