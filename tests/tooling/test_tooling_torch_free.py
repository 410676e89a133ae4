"""Device tooling never imports torch: the verdict, calibration checks and reports run on devices."""

from __future__ import annotations

import pytest
from test_import_isolation import run_blocked

MODULES = ["edgeanomaly.tooling", "edgeanomaly.judging", "edgeanomaly.tooling._validation", "edgeanomaly.tooling._benchmark",
           "edgeanomaly.tooling._resolution", "edgeanomaly.reports._html", "edgeanomaly.reports._validation",
           "edgeanomaly.reports._benchmark"]


@pytest.mark.parametrize("module", MODULES)
def test_tooling_imports_without_torch_or_matplotlib(module: str) -> None:
    proc = run_blocked(
        f"""
        import importlib
        importlib.import_module({module!r})
        assert "torch" not in sys.modules
        """,
        blocked=("torch", "matplotlib"),
    )
    assert proc.returncode == 0, proc.stderr


def test_html_report_draws_its_figures_without_matplotlib(tmp_path) -> None:
    """The [train] install of quickstart has no matplotlib: the page must still have every figure."""
    proc = run_blocked(
        f"""
        import cv2, numpy as np
        from pathlib import Path
        from edgeanomaly.bundle import Calibration
        from edgeanomaly.tooling._validation import ArtifactValidation, ValidationReport
        from edgeanomaly.reports._html import write_html_report
        from edgeanomaly.judging import judge

        rng = np.random.default_rng(0)
        root = Path({str(tmp_path)!r})
        labels = np.array([0, 0, 0, 1, 1, 1])
        maps = rng.random((6, 16, 16)).astype(np.float32)
        masks = np.zeros((6, 16, 16), bool)
        masks[3:, 4:9, 4:9] = True
        maps[3:, 4:9, 4:9] += 1.0
        scores = maps.max(axis=(1, 2)) + np.array([0, 0, 0.9, 0, 0, 0])  # one false positive
        paths = []
        for i in range(6):
            p = root / ("good" if i < 3 else "crack") / f"{{i}}.png"
            p.parent.mkdir(exist_ok=True)
            cv2.imwrite(str(p), rng.integers(0, 255, (40, 48, 3), dtype=np.uint8))
            paths.append(p)
        cal = Calibration(1.5, 0.0, 2.0, pixel_threshold=1.2, pixel_min=0.0, pixel_max=2.0)
        v = judge("fp32", 1.5, scores=scores, ref_scores=scores, labels=labels)
        a = ArtifactValidation("onnx-fp32", "fp32", "onnxruntime", "CPU", "fp32", status="pass", verdict=v.to_dict(),
                               metrics={{"image_auroc": 0.9}}, _scores=scores, _labels=labels, _maps=maps, _masks=masks)
        r = ValidationReport("b", "d", "d", {{"image_auroc": 0.9}}, [a], _calibration=cal, _paths=paths,
                             _preprocessing={{"image_size": [16, 16], "center_crop": None, "interpolation": "auto"}})
        page = write_html_report(r, root / "validation.html").read_text()
        assert page.count("<svg") == 5 and page.count("data:image/png;base64,") == 6, page.count("<svg")
        assert "1 wrong decision(s)" in page and "false positive: good/2.png" in page
        assert "http" not in page and "matplotlib" not in sys.modules
        """,
        blocked=("torch", "matplotlib"),
    )
    assert proc.returncode == 0, proc.stderr
