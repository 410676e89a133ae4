"""An INT8 artifact is never the CPU default: it is not reliably faster on CPUs without VNNI/AMX (issue 15).

docs/BENCHMARKS.md "(issue 15)" has the per-layer evidence: on this AVX2-only CPU the INT8
EfficientNet-Lite0 PatchCore ran at 0.90x of FP32 before issue 15 and 0.96-1.17x after it,
depending on the machine's load, so the CPU precision order (fp32 > fp16 > int8) keeps it off
the default path, with or without backend measurement.
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from _bundle_edit import subset as _subset
from edgeanomaly.bundle import read_bundle
from edgeanomaly.registry import backends
from edgeanomaly.runtime import load, select_artifact



def test_int8_is_last_on_every_cpu_backend() -> None:
    for spec in backends():
        if spec.knows("CPU"):
            order = spec.precision_order("CPU")
            assert "int8" not in order or order[-1] == "int8", (spec.name, order)


def test_int8_artifact_is_not_the_default(exported, tmp_path: Path) -> None:
    from edgeanomaly.cli import main

    _, report = exported["patchcore"]
    with read_bundle(report.out) as b:
        assert "openvino-int8" in {a.name for a in b.artifacts}
        for backend in ("auto", "openvino"):
            assert select_artifact(b, backend)[1].precision == "fp32"
    # Measuring backends compares engines at the chosen precision; it never promotes INT8.
    for measure in (False, True):
        with load(report.out, measure_backends=measure) as det:
            assert det.artifact.precision == "fp32" and "fp32 > fp16 > int8" in det.selection
    # Without FP32, FP16 (f32 execution on CPU) still comes before INT8.
    no_fp32 = _subset(report.out, tmp_path / "no-fp32", {"openvino-fp16", "openvino-int8"})
    with load(no_fp32) as det:
        assert det.artifact.name == "openvino-fp16"
    # INT8 runs when asked for, and the CLI says which artifact answered.
    r = CliRunner().invoke(main, ["predict", str(report.out), str(_an_image(tmp_path)), "--precision", "int8"])
    assert r.exit_code == 0, r.output
    assert "openvino-int8" in r.output


def _an_image(tmp_path: Path) -> Path:
    import cv2
    import numpy as np

    path = tmp_path / "part.png"
    cv2.imwrite(str(path), np.full((64, 64, 3), 128, np.uint8))
    return path
