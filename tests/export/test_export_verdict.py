"""Export judges each artifact as validate will: refused without --allow-degraded, marked with it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeanomaly.judging import _verdict

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def padim_ckpt(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory):
    from edgeanomaly.models._pipeline import fit_run

    out = tmp_path_factory.mktemp("padim")
    return fit_run("padim", synthetic_root, out / "run", category="metal", image_size=128, random_state=0).checkpoint


def test_export_refuses_or_marks_what_validate_would_fail(padim_ckpt, tmp_path: Path, monkeypatch) -> None:
    from edgeanomaly.errors import ExportError
    from edgeanomaly.export import export_checkpoint

    # As exported, every artifact passes and reference.npz pairs every held-out image.
    report = export_checkpoint(padim_ckpt, tmp_path / "ok", ["openvino"], ["fp32", "fp16"])
    assert not report.refused and [a.parity["verdict"]["outcome"] for a in report.artifacts] == ["PASS", "PASS"]
    with np.load(tmp_path / "ok" / "reference.npz") as ref:
        assert ref["eval_pred_score"].shape == ref["eval_labels"].shape == (len(ref["eval_keys"]),)
        assert len(ref["train_sha256"]) == padim_ckpt.info["n_train"]
    # An FP16 criterion no FP16 artifact meets: export must not write what validate would fail.
    monkeypatch.setitem(_verdict.TOLERANCES, "fp16", _verdict.Tolerance(output_rel=1e-12, metric=0.01))
    report = export_checkpoint(padim_ckpt, tmp_path / "refused", ["openvino"], ["fp32", "fp16"])
    assert [a.name for a in report.artifacts] == ["openvino-fp32"] and "openvino-fp16" in report.refused
    assert "raw score differs" in report.refused["openvino-fp16"][0]
    manifest = json.loads((tmp_path / "refused" / "manifest.json").read_text())
    assert [a["name"] for a in manifest["artifacts"]] == ["openvino-fp32"]
    kept = export_checkpoint(padim_ckpt, tmp_path / "kept", ["openvino"], ["fp16"], allow_degraded=True)
    assert kept.artifacts[0].parity["status"] == "degraded" and kept.artifacts[0].parity["verdict"]["outcome"] == "FAIL"
    with pytest.raises(ExportError, match="Every artifact fails the verdict"):
        export_checkpoint(padim_ckpt, tmp_path / "none", ["openvino"], ["fp16"])
    assert not (tmp_path / "none").exists()
