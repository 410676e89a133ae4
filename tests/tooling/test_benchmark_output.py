"""`benchmark` explains itself and compares like with like (issues 20 item 13, 25 item 6): each row
says which execution precision it ran, `vs fp32` is against the FP32 artifact at that same
execution precision with both medians shown, a legend says how `vs fp32` and `p50` differ, and
nothing is written unless asked, never over an earlier benchmark."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgeanomaly.tooling import BenchmarkRow
from edgeanomaly.reports import benchmark_markdown, write_benchmark


def _rows() -> list[BenchmarkRow]:
    fp32 = BenchmarkRow("openvino-fp32", "openvino", "fp32", "openvino", "CPU", execution="fp32 (f32 execution)",
                        execution_precision="f32", latency_ms_p50=14.4, speedup_vs_fp32=1.0, interleaved_infer_ms=12.0,
                        reference_infer_ms=12.0, speedup_reference="openvino-fp32 at f32")
    int8 = BenchmarkRow("openvino-int8", "openvino", "int8", "openvino", "CPU", execution="int8 (bf16 execution)",
                        execution_precision="bf16", latency_ms_p50=24.4, speedup_vs_fp32=10.0 / 8.0, interleaved_infer_ms=8.0,
                        reference_infer_ms=10.0, speedup_reference="openvino-fp32 at bf16")
    return [fp32, int8]


def test_table_says_the_execution_precision_and_what_vs_fp32_compares() -> None:
    md = benchmark_markdown(_rows())
    header, _, fp32, int8 = md.splitlines()[:4]
    cells = [c.strip() for c in header.split("|")]
    assert cells[6] == "exec"
    assert [c.strip() for c in fp32.split("|")][6] == "f32" and [c.strip() for c in int8.split("|")][6] == "bf16"
    # the ratio comes with the two interleaved medians it is made of: checkable from the table
    assert "| 1.25x (10.0 / 8.0) |" in int8 and "1.00x (ref)" in fp32
    assert "FP32 artifact run at this row's execution precision" in md and "p50 ms" in md.split("Columns:")[1]


def test_write_benchmark_never_overwrites(tmp_path: Path) -> None:
    written = write_benchmark(_rows(), tmp_path / "bench")
    before = [p.read_bytes() for p in written]
    with pytest.raises(FileExistsError, match="already holds benchmark.json and benchmark.md"):
        write_benchmark(_rows()[:1], tmp_path / "bench")
    assert [p.read_bytes() for p in written] == before
    assert json.loads(written[0].read_text())[1]["execution_precision"] == "bf16"


@pytest.mark.slow
def test_cli_writes_nothing_unasked_and_refuses_an_earlier_benchmark(tmp_path: Path) -> None:
    from edgeanomaly.cli import main
    from edgeanomaly.data import generate_synthetic_dataset
    from edgeanomaly.export import export_checkpoint
    from edgeanomaly.models import fit_run

    generate_synthetic_dataset(tmp_path / "data", ["metal"], n_train=6, n_test=2, seed=0, size=128)
    result = fit_run("dfm", tmp_path / "data", tmp_path / "dfm.run", category="metal", image_size=128,
                     backbone="efficientnet_lite0", pretrained=True, random_state=0)
    bundle = tmp_path / "b" / "dfm.bundle"
    export_checkpoint(result.checkpoint, bundle, ["onnx", "openvino"], ["fp32"])
    before = sorted(p.name for p in bundle.parent.iterdir())
    r = CliRunner().invoke(main, ["benchmark", str(bundle), "--repeats", "3", "--throughput-images", "2", "--no-cold-start"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in bundle.parent.iterdir()) == before  # no dfm.bundle-benchmark/ unasked
    assert "wrote" not in r.output and "Columns:" in r.output
    rows = [line for line in r.output.splitlines() if line.startswith("| ") and "CPU" in line]
    assert rows and all(line.split("|")[6].strip() in ("f32", "bf16") for line in rows if "openvino" in line.split("|")[2])
    out = tmp_path / "bench"
    out.mkdir()
    (out / "benchmark.md").write_text("an earlier benchmark\n")
    r = CliRunner().invoke(main, ["benchmark", str(bundle), "--repeats", "3", "--no-cold-start", "--out", str(out)])
    assert r.exit_code == 2 and "already holds benchmark.md" in r.output
    assert (out / "benchmark.md").read_text() == "an earlier benchmark\n" and not (out / "benchmark.json").exists()
