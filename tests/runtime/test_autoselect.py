"""``backend="auto"`` by measurement: real engines timed on a real bundle, the decision cached in cache_dir."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import part_image
from edgeanomaly.bundle import read_bundle
from edgeanomaly.registry import get_backend
from edgeanomaly.runtime import load
from edgeanomaly.runtime._autoselect import CACHE_FILE, MARGIN, busy_core, contenders, decide

_TIMED = re.compile(r"by measurement, (\w+) kept: (.*); medians of (\d+) warm batch-1 runs per condition")
_PER = re.compile(r"(\w+) ([\d.]+) ms idle(?:, ([\d.]+) ms one core busy)? \(worst ([\d.]+)x the fastest\)")


def timings(selection: str) -> tuple[str, dict[str, tuple[float, float | None, float]], int, float]:
    """``(winner, {backend: (idle ms, busy ms or None, worst slowdown)}, runs, measuring ms)`` from a reason."""
    m = _TIMED.search(selection)
    assert m, selection
    per = {b: (float(i), None if busy is None else float(busy), float(w)) for b, i, busy, w in _PER.findall(m.group(2))}
    cost = re.search(r"measuring took (\d+) ms", selection)
    assert cost, selection
    return m.group(1), per, int(m.group(3)), float(cost.group(1))

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
        winner, per, runs, cost_ms = timings(det.selection)
        assert set(per) == {"openvino", "onnxruntime"} and det.backend == winner
        assert 2 <= runs <= 3 and cost_ms > 0
        two_cores = len(os.sched_getaffinity(0)) >= 2 if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1) >= 2
        for idle, busy, worst in per.values():
            assert idle > 0 and (busy is not None) == two_cores and worst >= 1.0
        # The reason's slowdowns are its own medians' ratios (shown to 3 digits), and the
        # winner follows them: ONNX Runtime only when more than MARGIN better than OpenVINO.
        conditions = [0] + ([1] if two_cores else [])
        for b, t in per.items():
            want = max(t[c] / min(u[c] for u in per.values()) for c in conditions)
            assert t[2] == pytest.approx(want, rel=0.015, abs=0.006)
        ov, ort = per["openvino"][2], per["onnxruntime"][2]
        if winner == "openvino":
            assert ort >= (1 - MARGIN) * ov - 0.02
        else:
            assert ort <= (1 - MARGIN) * ov + 0.02
        # The kept engine answers like the registry-order one (both fp32, same graph).
        image = part_image(40, 48, defect=(4, 4, 6, 6))
        got = det.predict(image).raw_score
    with load(seg_bundle, measure_backends=False) as plain:
        assert "by measurement" not in plain.selection and plain.backend == "openvino"
        assert got == pytest.approx(plain.predict(image).raw_score, rel=1e-4)


def test_decide_prefers_the_backend_that_degrades_less() -> None:
    """Two recorded runs on this project's 2-core EPYC (40 interleaved rounds each, PatchCore
    recipe, OpenVINO at bf16 against ONNX Runtime at f32): in the first ONNX Runtime was
    faster idle but much slower with a core busy, so OpenVINO is kept; in the second
    (docs/BENCHMARKS.md, "Backend choice under load") its idle lead was the larger effect."""
    patchcore = {"idle": {"openvino": 24.1, "onnxruntime": 19.0}, "one core busy": {"openvino": 29.1, "onnxruntime": 41.1}}
    winner, worst = decide("openvino", patchcore)
    assert winner == "openvino"
    assert worst == pytest.approx({"openvino": 24.1 / 19.0, "onnxruntime": 41.1 / 29.1})
    later = {"idle": {"openvino": 23.09, "onnxruntime": 15.38}, "one core busy": {"openvino": 32.77, "onnxruntime": 39.77}}
    winner, worst = decide("openvino", later)
    assert winner == "onnxruntime" and worst == pytest.approx({"openvino": 23.09 / 15.38, "onnxruntime": 39.77 / 32.77})
    # Idle alone (one core: no busy condition), the faster backend wins by more than the margin.
    assert decide("openvino", {"idle": patchcore["idle"]})[0] == "onnxruntime"
    # Within the margin the registry's first choice stays, whichever is listed first.
    close = {"idle": {"onnxruntime": 20.0, "openvino": 20.6}}
    assert decide("openvino", close)[0] == "openvino" and decide("onnxruntime", close)[0] == "onnxruntime"
    # The margin is a fraction of the first choice's worst slowdown.
    assert decide("openvino", close, margin=0.0)[0] == "onnxruntime"
    # Better in both conditions wins whatever the order.
    assert decide("openvino", {"idle": {"openvino": 30.0, "onnxruntime": 20.0}, "busy": {"openvino": 50.0, "onnxruntime": 40.0}})[0] == "onnxruntime"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc (Linux)")
def test_busy_core_runs_one_spinner_and_stops_it() -> None:
    """The busy condition is a real process burning a core while the block runs; none after."""
    def children() -> set[int]:
        me = os.getpid()
        found = set()
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == me and fields[0] != "Z":
                    found.add(int(d.name))
        return found

    before = children()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    with busy_core() as busy:
        assert busy == (cores >= 2)
        spinners = children() - before
        assert len(spinners) == (1 if busy else 0)
        if busy:
            (pid,) = spinners
            stat = Path(f"/proc/{pid}/stat")
            ticks = lambda: sum(int(v) for v in stat.read_text().rsplit(")", 1)[1].split()[11:13])  # noqa: E731
            t0 = ticks()
            deadline = time.monotonic() + 10
            while ticks() - t0 < 5 and time.monotonic() < deadline:  # it burns CPU (5 ticks = 50 ms)
                time.sleep(0.02)
            assert ticks() - t0 >= 5
    assert children() - before == set()


@both
def test_cached_decision_is_reused_without_timing(seg_bundle: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with load(seg_bundle, measure_backends=True, cache_dir=cache) as first:
        assert _TIMED.search(first.selection) and "cached" not in first.selection, first.selection
        chosen = first.backend
    file = cache / CACHE_FILE
    stored = json.loads(file.read_text())["decisions"]
    assert len(stored) == 1
    (entry,) = stored.values()
    assert entry["backend"] == chosen and set(entry["worst_slowdown"]) == {"openvino", "onnxruntime"}
    assert all(set(by) == {"openvino", "onnxruntime"} for by in entry["median_ms"].values())
    assert "idle" in entry["median_ms"] and 0 < entry["measuring_ms"]
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
def test_default_measures_with_a_cache_dir_at_load(seg_bundle: Path, tmp_path: Path) -> None:
    with load(seg_bundle, cache_dir=tmp_path / "c") as det:  # paid once, then cached
        assert _TIMED.search(det.selection), det.selection
    assert (tmp_path / "c" / CACHE_FILE).is_file()


@both
def test_default_measures_at_the_first_predict_many(seg_bundle: Path) -> None:
    """Without a cache the load runs the registry's choice; the first predict_many (a caller
    with many images) measures, reusing the loaded engine, and keeps the winner."""
    images = [part_image(40, 48, defect=(4, 4, 6, 6)), part_image(40, 48)]
    with load(seg_bundle, measure_backends=False) as plain:
        want = [p.raw_score for p in plain.predict_many(images)]
    with load(seg_bundle) as det:
        assert "measurement" not in det.selection and det.backend == "openvino"
        loaded_engine = det._engine
        got = [p.raw_score for p in det.predict_many(images)]
        winner, per, _, _ = timings(det.selection)
        assert det.backend == winner and set(per) == {"openvino", "onnxruntime"}
        assert (det._engine is loaded_engine) == (winner == "openvino")  # the loaded engine reused when kept
        assert det.info()["backend"] == winner and det.artifact.name == ("openvino-fp32" if winner == "openvino" else "onnx-fp32")
        assert got == pytest.approx(want, rel=1e-4)
        selection = det.selection
        det.predict_many(images)  # measured once
        assert det.selection == selection


@both
def test_no_measurement_after_another_call(seg_bundle: Path) -> None:
    """A detector already in use is not measured (an engine in use is never swapped), nor one
    asked not to measure."""
    image = part_image(40, 48)
    with load(seg_bundle) as det:
        det.predict(image)
        list(det.predict_many([image, image]))
        assert "measurement" not in det.selection and det.backend == "openvino"
    with load(seg_bundle, measure_backends=False) as det:
        list(det.predict_many([image, image]))
        assert "measurement" not in det.selection


def test_long_running_cli_inputs_choose_the_backend_by_measurement(seg_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A video, camera, watched folder or many files run for long: the load pays the bounded
    timing once for the backend that holds up best; a few image files keep the registry order."""
    import json

    import cv2
    from click.testing import CliRunner

    import edgeanomaly.cli._predict as cli_predict

    video = tmp_path / "line.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (80, 64))
    for i in range(5):
        writer.write(np.full((64, 80, 3), 100 + i, np.uint8))
    writer.release()
    folder = tmp_path / "parts"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"part{i}.png"), np.full((64, 80, 3), 120 + i, np.uint8))

    def summary(*source: Path) -> dict:
        result = CliRunner().invoke(cli_predict.predict, [str(seg_bundle), *map(str, source), "--json"])
        assert result.exit_code == 0, result.output
        return [json.loads(line) for line in result.output.splitlines() if line.startswith("{")][-1]["summary"]

    streamed = summary(video)
    assert "by measurement" in streamed["selection"], streamed["selection"]
    once = summary(folder / "part0.png")
    assert "by measurement" not in once["selection"] and once["backend"] == "openvino"
    few = summary(folder)
    assert "by measurement" not in few["selection"] and few["backend"] == "openvino"
    monkeypatch.setattr(cli_predict, "MEASURE_FROM_FILES", 3)  # "many files", without writing 100
    many = summary(folder)
    assert "by measurement" in many["selection"], many["selection"]


@both
def test_auto_takes_a_backend_that_accepts_the_given_settings(seg_bundle: Path, tmp_path: Path) -> None:
    """An ONNX-only bundle goes to ONNX Runtime first; a setting only OpenVINO takes (its model
    cache, its execution precision) must then pick OpenVINO, which reads the same file, not
    refuse the load (found by bench_autoselect.py on the PaDiM recipe's bundle)."""
    from _bundle_edit import subset

    only = subset(seg_bundle, tmp_path / "onnx-only", {"onnx-fp32"})
    image = part_image(40, 48, defect=(4, 4, 6, 6))
    with load(only, measure_backends=False) as plain:
        assert plain.backend == "onnxruntime"
        want = plain.predict(image).raw_score
    for settings in ({"cache_dir": tmp_path / "c"}, {"inference_precision": "f32"}):
        with load(only, measure_backends=False, **settings) as det:
            assert det.backend == "openvino" and det.artifact.name == "onnx-fp32", (settings, det.selection)
            assert "takes " + next(iter(settings)) in det.selection, det.selection
            assert det.predict(image).raw_score == pytest.approx(want, rel=1e-4)
    # A named backend that does not take the setting is still refused, saying so.
    with pytest.raises(Exception, match="not a setting of the onnxruntime backend"):
        load(only, backend="onnxruntime", inference_precision="f32")
