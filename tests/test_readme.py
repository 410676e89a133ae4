"""README's Python quick start runs as written, uses only the front door, and prints what the
runtime itself computes for the bundle it wrote."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MARKER = "<!-- python-quickstart -->"


def quickstart_code() -> str:
    """The ```python block right after the marker in README.md."""
    text = (REPO / "README.md").read_text()
    assert text.count(MARKER) == 1, f"README.md must hold exactly one {MARKER}"
    match = re.match(r"\s*```python\n(.*?)\n```", text.split(MARKER, 1)[1], re.S)
    assert match, f"expected a ```python block right after {MARKER}"
    return match.group(1)


def test_quickstart_uses_only_the_front_door() -> None:
    tree = ast.parse(quickstart_code())
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert [(type(n).__name__, [(a.name, a.asname) for a in n.names]) for n in imports] == [
        ("Import", [("edgeanomaly", "ea")])
    ]


@pytest.mark.slow
def test_quickstart_runs_as_written(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="the quick start fits a model ([train] extra)")
    from edgeanomaly.data import generate_synthetic_dataset
    from edgeanomaly.runtime import load

    # the layout `edgeanomaly data synth --out data` writes, smaller (the test's time, not the README's)
    generate_synthetic_dataset(tmp_path / "data", ["metal"], n_train=8, n_test=2, seed=0, size=128)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", quickstart_code()], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "pc.run" / "checkpoint.json").is_file()
    lines = proc.stdout.splitlines()
    label, score, *_ = lines[1].split(" ", 2)
    # the oracle: the runtime's own load and predict on the bundle the block wrote
    with load(tmp_path / "pc.bundle", device="CPU") as detector:
        expected = detector.predict(tmp_path / "data" / "metal" / "test" / "scratch" / "000.png")
        shape, precision = expected.anomaly_map.shape, detector.precision
    assert label == str(expected.label)
    assert float(score) == pytest.approx(expected.score, rel=1e-6, abs=1e-7)
    assert lines[1].endswith(f"{shape} {precision}")
    assert lines[-1] in {"PASS", "INCONCLUSIVE"}, proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "pc.bundle", "pc.run"]  # nothing else written
