"""What signed bundles and the graph check cost at load time; run by hand (not collected by pytest):

    python benchmarks/bench_signing.py BUNDLE [--rounds 9]

Copies BUNDLE into a temporary folder, signs the copy with a fresh key, then interleaves per
round: ``read_bundle`` without and with trusted keys, ``check_graph`` of every artifact, and
``load`` (ONNX Runtime where the bundle has an ONNX file) without and with trust. Prints medians.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from edgeanomaly.bundle import TrustedKeys, check_graph, generate_keypair, read_bundle, sign_bundle
from edgeanomaly.runtime import load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-signing-") as tmp:
        copy = Path(tmp) / "b"
        shutil.copytree(args.bundle, copy)
        key, pub = generate_keypair(Path(tmp) / "keys", "bench")
        t0 = time.perf_counter()
        sign_bundle(copy, key)
        print(f"sign_bundle (verifies every checksum and graph first): {(time.perf_counter() - t0) * 1e3:.1f} ms")
        trust = TrustedKeys.load(pub)
        with read_bundle(copy) as b:
            backend = "onnxruntime" if any(a.format == "onnx" for a in b.artifacts) else "openvino"
        times: dict[str, list[float]] = {}

        def timed(name: str, fn) -> None:
            t = time.perf_counter()
            fn()
            times.setdefault(name, []).append((time.perf_counter() - t) * 1e3)

        for _ in range(args.rounds):
            timed("read_bundle", lambda: read_bundle(copy).close())
            timed("read_bundle, trust", lambda: read_bundle(copy, trust=trust).close())
            with read_bundle(copy) as b:
                timed("check_graph, every artifact", lambda: [check_graph(b, a) for a in b.artifacts])
            timed(f"load ({backend})", lambda: load(copy, backend=backend).close())
            timed(f"load ({backend}), trust", lambda: load(copy, backend=backend, trust=trust).close())
        for name, values in times.items():
            print(f"{name:32s} median {statistics.median(values):8.2f} ms  (min {min(values):.2f}, {len(values)} runs)")


if __name__ == "__main__":
    main()
