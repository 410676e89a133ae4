"""``backend="auto"`` by measurement: real engines timed on a real bundle, the decision cached in cache_dir."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import part_image
from edgeanomaly.bundle import read_bundle
from edgeanomaly.registry import get_backend
from edgeanomaly.runtime import load
from edgeanomaly.runtime._autoselect import CACHE_FILE, contenders

_TIMED = re.compile(r"by measurement, (\w+): ([\d.]+) ms vs (\w+) ([\d.]+) ms, median of (\d+) warm batch-1 runs")

both = pytest.mark.skipif(
    not (get_backend("openvino").installed() and get_backend("onnxruntime").installed()),
    reason="needs OpenVINO and ONNX Runtime",
)


def reexported(src: Path, dest: Path) -> Path:
    """A copy of bundle ``src`` whose ONNX file differs (a new doc string), checksums rewritten."""
    import dataclasses

    import onnx

    from edgeanomaly.bundle import write_bundle

    with read_bundle(src) as b:
        m = b.manifest
        files: dict[str, object] = {f.path: Path(b.root) / f.path for a in m.artifacts for f in a.files}
        graph = onnx.load(str(Path(b.root) / "model.onnx"))
        graph.doc_string = "re-exported"
        files["model.onnx"] = graph.SerializeToString()
        files[m.reference["file"].path] = Path(b.root) / m.reference["file"].path
        arts = [dataclasses.replace(a, files=()) if a.name == "onnx-fp32" else a for a in m.artifacts]
        return write_bundle(dest, dataclasses.replace(m, artifacts=arts), files)


@both
def test_auto_times_both_backends_and_names_both_timings(seg_bundle: Path) -> None:
    with load(seg_bundle, measure_backends=True) as det:
        m = _TIMED.search(det.selection)
        assert m, det.selection
        winner, t_win, other, t_other, runs = m.group(1), float(m.group(2)), m.group(3), float(m.group(4)), int(m.group(5))
        assert {winner, other} == {"openvino", "onnxruntime"} and det.backend == winner
        assert 2 <= runs <= 5 and t_win > 0 and t_other > 0
        # The faster one is kept, unless the other is within the 5% margin of the registry's first choice.
        assert t_win <= t_other or ("registry order decides" in det.selection and winner == "openvino")
        # The kept engine answers like the registry-order one (both fp32, same graph).
        image = part_image(40, 48, defect=(4, 4, 6, 6))
        got = det.predict(image).raw_score
    with load(seg_bundle, measure_backends=False) as plain:
        assert "by measurement" not in plain.selection and plain.backend == "openvino"
        assert got == pytest.approx(plain.predict(image).raw_score, rel=1e-4)


@both
def test_cached_decision_is_reused_without_timing(seg_bundle: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with load(seg_bundle, measure_backends=True, cache_dir=cache) as first:
        assert _TIMED.search(first.selection) and "cached" not in first.selection
        chosen = first.backend
    file = cache / CACHE_FILE
    stored = json.loads(file.read_text())["decisions"]
    assert len(stored) == 1
    (entry,) = stored.values()
    assert entry["backend"] == chosen and set(entry["median_ms"]) == {"openvino", "onnxruntime"}
    before = file.read_bytes()
    with load(seg_bundle, measure_backends=True, cache_dir=cache) as second:
        assert second.backend == chosen
        assert f"cached decision from {entry['measured_at']}" in second.selection and "not re-timed" in second.selection
        assert entry["reason"] in second.selection  # the measured timings, not new ones
    assert file.read_bytes() == before  # nothing re-measured, nothing rewritten
    # Nothing but the decision (and OpenVINO's compiled-model cache) is written there.
    assert {p.name for p in cache.iterdir() if p.suffix == ".json"} == {CACHE_FILE}


@both
def test_cache_is_invalidated_by_another_artifact(seg_bundle: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with load(seg_bundle, measure_backends=True, cache_dir=cache):
        pass
    # A re-exported ONNX graph (same weights, another file): another checksum, so another key.
    other = reexported(seg_bundle, tmp_path / "other")
    with load(other, measure_backends=True, cache_dir=cache) as det:
        assert _TIMED.search(det.selection) and "cached" not in det.selection
    stored = json.loads((cache / CACHE_FILE).read_text())["decisions"]
    assert len(stored) == 2
    keyed = {c["sha256"][0] for e in stored.values() for c in e["key"]["contenders"] if c["artifact"] == "onnx-fp32"}
    with read_bundle(seg_bundle) as a, read_bundle(other) as b:
        assert keyed == {next(x for x in bundle.artifacts if x.name == "onnx-fp32").files[0].sha256 for bundle in (a, b)}
        assert len(keyed) == 2


@both
def test_explicit_backend_or_artifact_never_measures(seg_bundle: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    for kwargs in ({"backend": "onnxruntime"}, {"backend": "openvino", "cache_dir": cache}, {"artifact": "onnx-fp32"}):
        with load(seg_bundle, measure_backends=True, **kwargs) as det:
            assert "measurement" not in det.selection, (kwargs, det.selection)
    assert not (cache / CACHE_FILE).exists()


@both
def test_an_openvino_only_setting_leaves_one_contender(seg_bundle: Path) -> None:
    with read_bundle(seg_bundle) as b:
        fp32 = next(a for a in b.artifacts if a.name == "openvino-fp32")
        assert [s.name for s, _ in contenders(b, "CPU", ("openvino", fp32), set())] == ["openvino", "onnxruntime"]
        assert [s.name for s, _ in contenders(b, "CPU", ("openvino", fp32), {"num_streams"})] == ["openvino"]
        fp16 = next(a for a in b.artifacts if a.name == "openvino-fp16")  # ONNX artifacts are fp32 only
        assert [s.name for s, _ in contenders(b, "CPU", ("openvino", fp16), set())] == ["openvino"]
    with load(seg_bundle, measure_backends=True, num_streams=1) as det:
        assert det.backend == "openvino" and "measurement" not in det.selection


def test_cache_dir_with_onnx_only_bundle_runs_under_auto(seg_bundle: Path, tmp_path: Path) -> None:
    """cache_dir is an auto setting when measuring: an ONNX-only bundle on ONNX Runtime still loads."""
    from _bundle_edit import subset

    only = subset(seg_bundle, tmp_path / "onnx-only", {"onnx-fp32"})
    with load(only, measure_backends=True, cache_dir=tmp_path / "c") as det:
        assert det.artifact.name == "onnx-fp32"
        assert np.isfinite(det.predict(part_image(32, 32)).raw_score)


@both
def test_default_measures_only_with_a_cache_dir(seg_bundle: Path, tmp_path: Path) -> None:
    with load(seg_bundle) as det:  # no cache: every start would pay for it, so the registry order
        assert "measurement" not in det.selection and det.backend == "openvino"
    with load(seg_bundle, cache_dir=tmp_path / "c") as det:  # paid once, then cached
        assert _TIMED.search(det.selection), det.selection
    assert (tmp_path / "c" / CACHE_FILE).is_file()


def test_long_running_cli_inputs_choose_the_backend_by_measurement(seg_bundle: Path, tmp_path: Path) -> None:
    """A video, camera or watched folder runs for long: its load pays the bounded timing once
    (about a second) for the faster backend; a few image files keep the registry order."""
    import json

    import cv2
    from click.testing import CliRunner

    from edgeanomaly.cli._predict import predict

    video = tmp_path / "line.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (80, 64))
    for i in range(5):
        writer.write(np.full((64, 80, 3), 100 + i, np.uint8))
    writer.release()
    image = tmp_path / "part.png"
    cv2.imwrite(str(image), np.full((64, 80, 3), 120, np.uint8))

    def summary(source: Path) -> dict:
        result = CliRunner().invoke(predict, [str(seg_bundle), str(source), "--json"])
        assert result.exit_code == 0, result.output
        return [json.loads(line) for line in result.output.splitlines() if line.startswith("{")][-1]["summary"]

    streamed = summary(video)
    assert "by measurement" in streamed["selection"], streamed["selection"]
    once = summary(image)
    assert "by measurement" not in once["selection"] and once["backend"] == "openvino"
