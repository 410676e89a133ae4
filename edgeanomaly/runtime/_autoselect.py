"""``backend="auto"`` by measurement: time the backends that can run the chosen artifact, keep
the one that holds up best, quiet and with another job running.

The registry order (OpenVINO, then ONNX Runtime) is a guess; on some CPUs and graphs ONNX
Runtime is faster. When more than one installed backend can run an artifact of the chosen
precision on the device, :func:`measure_choice` loads each and times warm batch-1 inferences
on a real input of the model's size, interleaved so that all see the same machine, in two
conditions: as the machine is, and with one core taken by a busy process (another job on the
line PC). A backend that is faster on an idle machine can be slower when a core is taken (on
the 2-core CPU of docs/BENCHMARKS.md, ONNX Runtime ran the PatchCore recipe's graph in 0.67x
OpenVINO's time idle and 1.21x with one core busy), so the choice is the backend whose worst
slowdown against the fastest backend of each condition is smallest (the registry's first choice unless another
is more than :data:`MARGIN` better). Warm-up and timed runs are bounded by run counts and a
time budget, so that measuring costs well under a second beyond the first load; the cost is
reported in the reason. The decision is cached only when ``cache_dir`` is given, in one JSON
file there, keyed by everything that can change the answer (the artifacts' checksums, the
backends' and edgeanomaly's versions, the device, the CPU, the cores available and the load
settings); nothing is written anywhere else.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import json
import logging
import os
import platform
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from edgeanomaly.bundle import write_bytes_atomic
from edgeanomaly.data import PreprocessConfig, preprocess
from edgeanomaly.errors import EdgeAnomalyError
from edgeanomaly.registry import BackendSpec, backends, get_backend
from edgeanomaly.runtime._backends._onnxruntime import physical_cores

__all__ = [
    "CACHE_FILE", "MARGIN", "MAX_RUNS", "TIME_BUDGET_S", "WARMUP_RUNS", "busy_core", "contenders", "decide",
    "measure_by_default", "measure_choice", "probe_input",
]

log = logging.getLogger("edgeanomaly.runtime")


#: Untimed runs per backend before timing: the first runs allocate and tune kernels.
WARMUP_RUNS = 2
#: Timed warm runs per backend in each condition (idle, one core busy).
MAX_RUNS = 3
#: Stop timing a condition after this many seconds (at least :data:`MIN_RUNS` rounds are run).
TIME_BUDGET_S = 0.25
MIN_RUNS = 2
#: Another backend replaces the registry's first choice only when its worst slowdown is this
#: much smaller: closer than that is measurement noise, and the registry order decides.
MARGIN = 0.05
#: The decision file inside ``cache_dir``.
CACHE_FILE = "edgeanomaly-backend-choice.json"

#: Settings that may be given with ``backend="auto"`` although a contender does not take them:
#: ``cache_dir`` keeps the decision (and OpenVINO's compiled models, for backends that take it).
_AUTO_SETTINGS = frozenset({"cache_dir"})


def measure_by_default(cache_dir: Any) -> bool:
    """Whether ``load(backend="auto")`` measures when ``measure_backends`` is not given: only with
    a ``cache_dir``, where the decision is kept. Measuring loads every contender and times it,
    which multiplied the load time by 3-4 on this machine (docs/BENCHMARKS.md, "(issue 15)"),
    on every start without a cache; with one it is paid once per artifact, backend version,
    device and CPU, and later loads cost what a load without measurement costs. Long-running
    callers (``edgeanomaly serve``; ``predict`` on a video, camera or drop folder) pass
    ``measure_backends=True``: they pay the timing once per start."""
    return cache_dir is not None


def contenders(bundle: Any, device: str, first: tuple[str, Any], explicit: set[str]) -> list[tuple[BackendSpec, Any]]:
    """``[(backend row, artifact)]`` that can run an artifact of ``first``'s precision on ``device``.

    ``first`` (the registry-order choice) comes first. A backend contends when ``auto`` may pick
    it, it is installed, knows the device, prefers that precision there, and takes every
    setting the user gave explicitly (``explicit``, e.g. ``inference_precision`` is OpenVINO's
    only); it runs its own preferred format of that precision.
    """
    name, chosen = first
    out: list[tuple[BackendSpec, Any]] = [(get_backend(name), chosen)]
    for spec in backends():
        if spec.name == name or spec.connects or not (spec.auto and spec.installed() and spec.knows(device)):
            continue
        if chosen.precision not in spec.precision_order(device) or not explicit <= set(spec.options) | _AUTO_SETTINGS:
            continue
        static = spec.needs_static_batch(device)
        for fmt in spec.formats:
            art = next(
                (a for a in bundle.artifacts
                 if a.format == fmt and a.precision == chosen.precision and (not static or a.static_batch)),
                None,
            )
            if art is not None:
                out.append((spec, art))
                break
    return out


def _version(module: str) -> str:
    try:
        return importlib.metadata.version(module)
    except importlib.metadata.PackageNotFoundError:  # e.g. onnxruntime installed as onnxruntime-gpu
        return str(getattr(importlib.import_module(module), "__version__", "unknown"))


def _cpu_identity() -> str:
    """Model name and instruction-set flags of this CPU (what makes one backend's kernels faster)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return f"{platform.machine()} {platform.processor()}"
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "flags", "Features", "CPU part") and key not in fields:
            fields[key] = value.strip()
    return f"{platform.machine()} " + " | ".join(f"{k}: {v}" for k, v in sorted(fields.items()))


def _cache_key(pairs: list[tuple[BackendSpec, Any]], device: str, settings: dict[str, Any], shape: tuple[int, ...]) -> tuple[str, dict[str, Any]]:
    described = {
        "contenders": [
            {"backend": s.name, "version": _version(s.module), "artifact": a.name,
             "sha256": sorted(f.sha256 for f in a.files) or [a.path]}
            for s, a in pairs
        ],
        "edgeanomaly": _version("edgeanomaly"),  # how we run a backend changes its speed too
        "device": device,
        "cpu": hashlib.sha256(_cpu_identity().encode()).hexdigest()[:16],
        "cores": physical_cores(),
        "settings": {k: str(v) for k, v in sorted(settings.items())},
        "input": list(shape),
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest(), described


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable backend-choice cache %s (%s); measuring again", path, exc)
        return {}
    return data.get("decisions", {}) if isinstance(data, dict) and isinstance(data.get("decisions"), dict) else {}


def _write_cache(path: Path, key: str, entry: dict[str, Any]) -> None:
    decisions = _read_cache(path)
    decisions[key] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    # Atomic: a concurrent reader sees the old file or the new one.
    text = json.dumps({"format": 1, "decisions": decisions}, indent=2, sort_keys=True) + "\n"
    write_bytes_atomic(path, text.encode())


def probe_input(bundle: Any, input_size: tuple[int, int]) -> np.ndarray:
    """(1, 3, H, W) float32: the bundle's first reference image, preprocessed; noise in [0, 1] without one."""
    try:
        ref = bundle.reference()
    except (EdgeAnomalyError, OSError, ValueError, KeyError):
        ref = None
    if ref is not None and "images" in ref and len(ref["images"]):
        return preprocess(ref["images"][0], PreprocessConfig.from_dict(bundle.manifest.preprocessing))[None]
    return np.random.default_rng(0).random((1, 3, *input_size), dtype=np.float32)


@contextmanager
def busy_core() -> Iterator[bool]:
    """One core kept busy by a separate process while the block runs (another job on the
    machine); yields False, and starts nothing, where fewer than 2 cores are available."""
    if physical_cores() < 2:
        yield False
        return
    # -I -S: no site, no user paths, nothing read or written; it says it runs, then spins
    # until killed. Waiting for that line keeps the interpreter's start out of the timing.
    spinner = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", "import sys\nsys.stdout.write('1')\nsys.stdout.flush()\nwhile True: pass"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    try:
        yield spinner.stdout.read(1) == b"1"  # type: ignore[union-attr]  # False: it did not start
    finally:
        spinner.kill()
        spinner.wait()
        spinner.stdout.close()  # type: ignore[union-attr]


def _time_engines(engines: list[tuple[str, Any]], x: np.ndarray, runs: int, budget_s: float) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name, _ in engines}
    start = time.perf_counter()
    for r in range(runs):
        if r >= MIN_RUNS and time.perf_counter() - start > budget_s:
            break
        # Rotate who goes first so neither backend always runs right after the other.
        for name, engine in engines[r % len(engines):] + engines[: r % len(engines)]:
            t0 = time.perf_counter()
            engine.run(x)
            times[name].append((time.perf_counter() - t0) * 1e3)
    return times


def _ms(v: float) -> str:
    """Three significant digits (0.123, 24.1, 279): small graphs' ratios survive the rounding."""
    return f"{v:.3g}" if v < 100 else f"{v:.0f}"


def decide(first: str, medians: dict[str, dict[str, float]], margin: float = MARGIN) -> tuple[str, dict[str, float]]:
    """``(winner, worst slowdown per backend)`` from ``{condition: {backend: median ms}}``.

    A backend's slowdown in a condition is its median over the fastest median there; the
    winner has the smallest worst slowdown over the conditions, and ``first`` (the registry
    order) keeps it unless another's is more than ``margin`` smaller.

    >>> decide("openvino", {"idle": {"openvino": 24.1, "onnxruntime": 19.0},
    ...                     "busy": {"openvino": 29.1, "onnxruntime": 41.1}})[0]
    'openvino'
    """
    names = list(next(iter(medians.values())))
    worst = {n: max(m[n] / min(m.values()) for m in medians.values()) for n in names}
    best = min(worst, key=worst.__getitem__)
    return (best if worst[best] < (1.0 - margin) * worst[first] else first), worst


def measure_choice(
    bundle: Any,
    device: str,
    first: tuple[str, Any, str],
    explicit: set[str],
    create: Callable[[BackendSpec, Any], Any],
    *,
    settings: dict[str, Any],
    input_size: tuple[int, int],
    cache_dir: str | os.PathLike[str] | None = None,
    runs: int = MAX_RUNS,
    budget_s: float = TIME_BUDGET_S,
    loaded: Any = None,
) -> tuple[Any, str, Any, str]:
    """Time the contenders of ``first`` and return ``(engine, backend name, artifact, why)``.

    ``first`` is the registry-order choice ``(backend, artifact, why)``; ``create(spec,
    artifact)`` loads an engine; ``loaded`` is ``first``'s engine when it is already loaded
    (it is then reused, and closed here only if another backend wins); ``settings`` are the
    load settings that change speed (threads, streams, hint), part of the cache key. With
    one contender nothing is timed. A contender that fails to load is dropped with a warning.
    """
    name, chosen, why = first
    pairs = contenders(bundle, device, (name, chosen), explicit)
    if len(pairs) < 2:
        return (loaded if loaded is not None else create(pairs[0][0], chosen)), name, chosen, why
    started = time.perf_counter()
    x = probe_input(bundle, input_size)
    cache = Path(cache_dir) / CACHE_FILE if cache_dir is not None else None
    if cache is not None:
        key, described = _cache_key(pairs, device, settings, tuple(x.shape))
        hit = _read_cache(cache).get(key)
        if hit and hit.get("backend") in {s.name for s, _ in pairs}:
            return _from_cache(hit, pairs, first, loaded, create, cache)

    engines, first_load_s = _load_contenders(pairs, name, chosen, loaded, create)
    started += first_load_s  # the first engine's own load is not the measuring's cost
    if len(engines) < 2:
        return engines[0][2], name, chosen, why
    try:
        times = _time_conditions([(n, e) for n, _, e in engines], x, runs, budget_s)
    except BaseException:
        for _, _, engine in engines:
            if engine is not loaded:
                engine.close()
        raise
    medians = {c: {n: float(np.median(t)) for n, t in ts.items()} for c, ts in times.items()}
    winner, worst = decide(name, medians)
    cost_ms = (time.perf_counter() - started) * 1e3
    n_runs = min(len(t) for ts in times.values() for t in ts.values())
    reason = _reason(winner, medians, worst, n_runs)
    because = f"{why}; by measurement, {reason}; measuring took {cost_ms:.0f} ms"
    for n, _, engine in engines:
        if n != winner:
            engine.close()
    engine, art = next((e, a) for n, a, e in engines if n == winner)
    if cache is not None:
        _write_cache(cache, key, {
            "backend": winner, "artifact": art.name, "reason": reason,
            "median_ms": {c: {n: round(m, 4) for n, m in ms.items()} for c, ms in medians.items()},
            "worst_slowdown": {n: round(w, 3) for n, w in worst.items()}, "runs": n_runs,
            "measuring_ms": round(cost_ms, 1),
            "measured_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "key": described,
        })
    log.info("backend choice: %s", because)
    return engine, winner, art, because


def _from_cache(hit: dict[str, Any], pairs: list[tuple[BackendSpec, Any]], first: tuple[str, Any, str], loaded: Any,
                create: Callable[[BackendSpec, Any], Any], cache: Path) -> tuple[Any, str, Any, str]:
    """The cached decision ``hit``: its engine (``loaded`` reused when it is the winner)."""
    name, chosen, why = first
    spec, art = next((s, a) for s, a in pairs if s.name == hit["backend"])
    because = f"{why}; {hit['reason']} (cached decision from {hit['measured_at']} in {cache}, not re-timed)"
    log.info("backend choice: %s", because)
    if loaded is not None and spec.name == name:
        return loaded, name, chosen, because
    engine = create(spec, art)
    if loaded is not None:
        loaded.close()
    return engine, spec.name, art, because


def _load_contenders(pairs: list[tuple[BackendSpec, Any]], name: str, chosen: Any, loaded: Any,
                     create: Callable[[BackendSpec, Any], Any]) -> tuple[list[tuple[str, Any, Any]], float]:
    """``([(backend, artifact, engine)], seconds the first one's load took)``; ``loaded`` is
    reused for the first. A contender other than the first that fails to load is dropped
    with a warning; the first's failure is raised, after closing what was loaded."""
    engines: list[tuple[str, Any, Any]] = []
    first_s = 0.0
    try:
        for spec, art in pairs:
            if loaded is not None and spec.name == name:
                engines.append((name, chosen, loaded))
                continue
            try:
                t0 = time.perf_counter()
                engines.append((spec.name, art, create(spec, art)))
                if spec.name == name:
                    first_s = time.perf_counter() - t0
            except EdgeAnomalyError as exc:
                if spec.name == name:
                    raise
                log.warning("backend choice: %s could not load %s (%s); not timed", spec.name, art.name, exc)
    except BaseException:
        for _, _, engine in engines:
            if engine is not loaded:
                engine.close()
        raise
    return engines, first_s


def _time_conditions(timed: list[tuple[str, Any]], x: np.ndarray, runs: int, budget_s: float) -> dict[str, dict[str, list[float]]]:
    """``{condition: {backend: [ms]}}``: warm runs as the machine is, then with one core busy."""
    for _ in range(WARMUP_RUNS):  # untimed: the first runs allocate and tune kernels
        for _, engine in timed:
            engine.run(x)
    times = {"idle": _time_engines(timed, x, runs, budget_s)}
    with busy_core() as busy:
        if busy:
            for _, engine in timed:  # untimed: the scheduler settles on sharing the cores
                engine.run(x)
            times["one core busy"] = _time_engines(timed, x, runs, budget_s)
    return times


def _reason(winner: str, medians: dict[str, dict[str, float]], worst: dict[str, float], n_runs: int) -> str:
    """The measured choice in words: each backend's medians per condition and worst slowdown."""
    order = [winner, *sorted((n for n in worst if n != winner), key=worst.__getitem__)]
    per = "; ".join(
        f"{n} " + ", ".join(f"{_ms(medians[c][n])} ms {c}" for c in medians) + f" (worst {worst[n]:.2f}x the fastest)"
        for n in order
    )
    reason = f"{winner} kept: {per}; medians of {n_runs} warm batch-1 runs per condition"
    if winner != min(worst, key=worst.__getitem__):
        reason += f" (within {MARGIN:.0%}: registry order decides)"
    return reason
