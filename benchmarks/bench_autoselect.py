"""Backend choice by measurement, run by hand (not collected by pytest): is it worth its cold start?

    python benchmarks/bench_autoselect.py BUNDLE [--rounds 5] [--runs 40] [--choices 10]

Prints, interleaved so all variants see the same machine load (issue 15):
- cold start in a fresh interpreter (import + ``load(BUNDLE)`` + first prediction) with
  ``measure_backends`` off, on, and on with a warm ``cache_dir`` (the decision cached; the
  comparison for that one is "off" with the same warm ``cache_dir``, since OpenVINO then also
  reuses its compiled model), median over ``--rounds`` rounds;
- warm batch-1 latency of the fp32 artifact on each backend that can run it (``backend=``
  named, so nothing is measured at load), ``--runs`` runs in turns, idle and with one core
  kept busy by a spinner process (issue 25); median and p95, and the number of inferences
  after which measuring has paid for its cold start;
- with ``--choices N``: N loads with ``measure_backends=True`` in this process (warm), the
  backend each chose and the measuring cost each reported (``measuring took N ms``): how
  stable the short in-load measurement is against the long one above.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

_COLD = """
import json, sys, time
t0 = time.perf_counter()
from edgeanomaly.runtime import load
import numpy as np
t1 = time.perf_counter()
det = load(sys.argv[1], measure_backends=sys.argv[2] == "on", cache_dir=sys.argv[3] or None)
t2 = time.perf_counter()
det.predict(np.full((256, 256, 3), 128, np.uint8))
t3 = time.perf_counter()
print(json.dumps({"load_s": t2 - t1, "first_s": t3 - t2, "total_s": t3 - t0, "backend": det.backend, "selection": det.selection}))
"""


def cold(bundle: str, measure: str, cache: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _COLD, bundle, measure, cache], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--choices", type=int, default=0, help="loads with measure_backends=True to tally")
    args = ap.parse_args()

    from edgeanomaly.bundle import read_bundle
    from edgeanomaly.data import PreprocessConfig
    from edgeanomaly.runtime import load
    from edgeanomaly.runtime._autoselect import busy_core, contenders, probe_input

    tmp = Path(tempfile.mkdtemp(prefix="bench-autoselect-"))
    try:
        warm_off, warm_on = tmp / "warm-off", tmp / "warm-on"
        cold(args.bundle, "off", str(warm_off))  # fill OpenVINO's model cache
        cold(args.bundle, "on", str(warm_on))  # fill the model cache and the decision
        variants = {"off": ("off", ""), "on": ("on", ""), "off+warm cache_dir": ("off", str(warm_off)),
                    "on+cached decision": ("on", str(warm_on))}
        results: dict[str, list[dict]] = {k: [] for k in variants}
        for _ in range(args.rounds):
            for name, (measure, cache) in variants.items():
                results[name].append(cold(args.bundle, measure, cache))
        print(f"cold start (import + load + first predict), median of {args.rounds} interleaved rounds:")
        for name, rs in results.items():
            print(f"  measure {name:20s} load {np.median([r['load_s'] for r in rs]) * 1e3:7.0f} ms   "
                  f"total {np.median([r['total_s'] for r in rs]):5.2f} s   chose {sorted({r['backend'] for r in rs})}")
        print("  e.g.:", results["on"][-1]["selection"])
        print("  cached:", results["on+cached decision"][-1]["selection"])

        with read_bundle(args.bundle) as b:
            first = load(b, measure_backends=False)
            pairs = contenders(b, "CPU", (first.backend, first.artifact), set())
            first.close()
            x = probe_input(b, PreprocessConfig.from_dict(b.manifest.preprocessing).input_size)
            dets = [load(b, backend=s.name, artifact=a.name) for s, a in pairs]
            conditions: dict[str, list[list[float]]] = {}
            try:
                for d in dets:
                    for _ in range(3):
                        d.predict_tensor(x)
                for condition in ("idle", "one core busy"):
                    with busy_core() if condition != "idle" else contextlib.nullcontext(True) as on:
                        if not on:
                            continue
                        times: list[list[float]] = [[] for _ in dets]
                        for i in range(args.runs):
                            for k in list(range(len(dets)))[i % len(dets):] + list(range(len(dets)))[: i % len(dets)]:
                                times[k].append(dets[k].predict_tensor(x)[0].timings["infer"])
                        conditions[condition] = times
            finally:
                for d in dets:
                    d.close()
            picks: list[tuple[str, float]] = []
            for _ in range(args.choices):
                with load(b, measure_backends=True) as d:
                    picks.append((d.backend, float(re.search(r"measuring took (\d+) ms", d.selection).group(1))))
                    example = d.selection
        for condition, times in conditions.items():
            print(f"warm batch-1 graph latency, {args.runs} runs in turns, {condition}:")
            for (s, a), t in zip(pairs, times):
                print(f"  {s.name:12s} {a.name:14s} median {np.median(t):6.2f} ms   p95 {np.percentile(t, 95):6.2f} ms")
        if picks:
            tally = {n: sum(1 for p, _ in picks if p == n) for n in sorted({p for p, _ in picks})}
            print(f"{len(picks)} loads with measure_backends=True chose {tally}; measuring took "
                  f"median {np.median([c for _, c in picks]):.0f} ms (max {max(c for _, c in picks):.0f} ms)")
            print("  e.g.:", example)
        times = conditions["idle"]
        med = {s.name: float(np.median(t)) for (s, _), t in zip(pairs, times)}
        first_choice = pairs[0][0].name  # what the registry order runs without measuring
        gain = med[first_choice] - min(med.values())
        cost = (np.median([r["load_s"] for r in results["on"]]) - np.median([r["load_s"] for r in results["off"]])) * 1e3
        if gain <= 0:
            print(f"measuring costs {cost:.0f} ms at load and gains nothing here: {first_choice}, the registry's choice, is the fastest")
        else:
            print(f"measuring costs {cost:.0f} ms at load and saves {gain:.2f} ms per inference over {first_choice}: "
                  f"pays after {cost / gain:.0f} inferences")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
