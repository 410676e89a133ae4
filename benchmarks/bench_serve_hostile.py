"""`edgeanomaly serve` under 8 clients with hostile requests mixed in (issue 20), run by hand or
by tests/serve/test_load.py (short). Not collected by pytest.

    python benchmarks/bench_serve_hostile.py BUNDLE --images DIR [--clients 8] [--rounds 4]
        [--max-request-mp 16] [--max-request-mb 16] [--max-response-mb 4] [--memory-cap-gb 3] [--json]

Starts `edgeanomaly serve` on 127.0.0.1 (free ports; loopback only) under RLIMIT_DATA of
``--memory-cap-gb``, then ``--clients`` threads each send ``--rounds`` rounds of the same mix:
every good request (one real image of DIR per request, one 4000x4000 image: the whole
default budget of this script, and a 12 MB JSON body: a 2000x1500 noise PNG in base64) and every
bad one of the issue (deeply nested JSON, a [2**32, 2**32] shape, 64 PNGs of 8000x8000, a
full-size anomaly map of a 6-megapixel image as JSON, a 16000x16000 WebP header, malformed
JSON, a truncated PNG, an unknown model), each client in its own order. Bounded: rounds x
requests per round, a 120 s timeout per request, and ``--max-seconds`` in all.

Reports: answers by status, requests that got an unexpected status (a 5xx or a good request
not answered 200), good scores that differ from in-process ``Detector.predict`` (FP32
tolerance), the server's resident memory after warm-up and its peak (VmHWM), and the memory
bound of README.md (serve: memory) for these settings. Exit status 1 when anything was unexpected or the
peak is over the bound.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import random
import resource
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

def memory_bound(base: int, max_request_mp: float, max_request_mb: float, max_response_mb: float, clients: int) -> int:
    """README ("Serve at scale"): :func:`edgeanomaly.serve.memory_bound` in the CLI's units."""
    from edgeanomaly.serve import memory_bound as bound

    return bound(base, max_request_mp * 1e6, max_request_mb * (1 << 20), max_response_mb * (1 << 20), clients)


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key} for {pid}")


def _png(h: int, w: int) -> bytes:
    import cv2

    img = np.zeros((h, w), np.uint8)
    img[h // 3 : h // 2, w // 3 : w // 2] = 200
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    assert ok
    return buf.tobytes()


def _bytes_request(images: list[bytes], outputs: list[str] | None = None) -> tuple[bytes, dict[str, str]]:
    raw = b"".join(struct.pack("<I", len(b)) + b for b in images)
    doc: dict = {"inputs": [{"name": "image_bytes", "shape": [len(images)], "datatype": "BYTES",
                             "parameters": {"binary_data_size": len(raw)}}]}
    if outputs:
        doc["outputs"] = [{"name": o} for o in outputs]
    head = json.dumps(doc).encode()
    return head + raw, {"Inference-Header-Content-Length": str(len(head)), "Content-Type": "application/octet-stream"}


def requests_mix(images: list[Path], model: str) -> list[tuple[str, str, bytes, dict[str, str], int]]:
    """(what, path, body, headers, expected status); expected 200 marks a good request."""
    infer = f"/v2/models/{model}/infer"
    j = {"Content-Type": "application/json"}
    vp8x = b"WEBP" + b"VP8X" + struct.pack("<I", 10) + bytes([0x10, 0, 0, 0]) + (15999).to_bytes(3, "little") * 2
    webp_bomb = b"RIFF" + struct.pack("<I", len(vp8x)) + vp8x
    six_mp = _png(3000, 2000)
    import cv2

    noise = cv2.imencode(".png", np.random.default_rng(0).integers(0, 256, (1500, 2000, 3), dtype=np.uint8))[1].tobytes()
    good = [(f"good {p.parent.name}/{p.name}", infer, *_bytes_request([p.read_bytes()], ["raw_score", "pred_label"]), 200) for p in images]
    return good + [
        ("good image of the whole 16 MP budget", infer, *_bytes_request([_png(4000, 4000)]), 200),
        ("good 12 MB JSON body (a noise PNG in base64)", infer, json.dumps({"inputs": [{
            "name": "image_bytes", "shape": [1], "datatype": "BYTES", "data": [base64.b64encode(noise).decode()]}]}).encode(), j, 200),
        ("nested JSON", infer, b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", j, 400),
        ("shape [2**32, 2**32]", infer, json.dumps({"inputs": [{"name": "image", "shape": [2**32, 2**32], "datatype": "FP32",
                                                                "data": []}]}).encode(), j, 400),
        ("64 PNGs of 8000x8000", infer, *_bytes_request([_png(8000, 8000)] * 64), 413),
        ("anomaly map of 6 MP as JSON", infer, *_bytes_request([six_mp], ["anomaly_map"]), 413),
        ("16000x16000 WebP", infer, *_bytes_request([webp_bomb]), 413),
        ("malformed JSON", infer, b"{bad", j, 400),
        ("truncated PNG", infer, *_bytes_request([six_mp[:200]]), 400),
        ("unknown model", "/v2/models/nope/infer", *_bytes_request([images[0].read_bytes()]), 404),
    ]


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle")
    ap.add_argument("--images", required=True, help="folder of images (PNG), searched recursively")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--max-request-mp", type=float, default=16.0)
    ap.add_argument("--max-request-mb", type=float, default=16.0)
    ap.add_argument("--max-response-mb", type=float, default=4.0)
    ap.add_argument("--memory-cap-gb", type=float, default=3.0)
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--max-seconds", type=float, default=900.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    from edgeanomaly.runtime import load, served_model_name

    images = sorted(Path(args.images).rglob("*.png"))[:8]  # at most 8 good real images a round
    model = served_model_name(args.bundle)
    mix = requests_mix(images, model)
    with load(args.bundle, backend=args.backend) as det:
        want = {what: det.predict(str(p)).raw_score for (what, *_), p in zip(mix, images)}

    cap = int(args.memory_cap_gb * (1 << 30))
    http_port, grpc_port = _free_port(), _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeanomaly.cli", "serve", args.bundle, "--backend", args.backend, "--host", "127.0.0.1",
         "--http-port", str(http_port), "--grpc-port", str(grpc_port), "--max-request-mp", str(args.max_request_mp),
         "--max-request-mb", str(args.max_request_mb), "--max-response-mb", str(args.max_response_mb)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_DATA, (cap, cap)),
    )
    url = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                print("edgeanomaly serve did not start", file=sys.stderr)
                return 1
            with contextlib.suppress(OSError):
                if urllib.request.urlopen(url + "/v2/health/ready", timeout=2).status == 200:
                    break
            time.sleep(0.5)
        base = _status_kb(proc.pid, "VmRSS")
        statuses: dict[int, int] = {}
        unexpected: list[str] = []
        wrong: list[str] = []
        lock = threading.Lock()
        stop_at = time.monotonic() + args.max_seconds

        def client(k: int) -> None:
            order = list(mix)
            for _ in range(args.rounds):
                random.Random(k).shuffle(order)
                for what, path, body, headers, expected in order:
                    if time.monotonic() > stop_at:
                        return
                    try:
                        status, data = _post(url + path, body, headers)
                    except OSError as exc:
                        status, data = -1, str(exc).encode()
                    with lock:
                        statuses[status] = statuses.get(status, 0) + 1
                        if status != expected:
                            unexpected.append(f"{what}: HTTP {status} (expected {expected}) {data[:200]!r}")
                        elif what in want:
                            score = {o["name"]: o["data"] for o in json.loads(data)["outputs"]}["raw_score"][0]
                            if abs(score - want[what]) > 1e-5 * abs(want[what]):
                                wrong.append(f"{what}: {score} != {want[what]}")

        t0 = time.monotonic()
        threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - t0
        peak = _status_kb(proc.pid, "VmHWM")
        bound = memory_bound(base, args.max_request_mp, args.max_request_mb, args.max_response_mb, args.clients)
        report = {
            "clients": args.clients, "rounds": args.rounds, "requests": sum(statuses.values()),
            "good_per_round": sum(1 for m in mix if m[4] == 200), "bad_per_round": sum(1 for m in mix if m[4] != 200),
            "statuses": {str(k): v for k, v in sorted(statuses.items())}, "unexpected": unexpected, "wrong_scores": wrong,
            "server_alive": proc.poll() is None, "wall_s": round(wall, 1),
            "rss_after_warmup_mb": round(base / 2**20, 1), "peak_rss_mb": round(peak / 2**20, 1),
            "bound_mb": round(bound / 2**20, 1),
            "settings": {"max_request_mp": args.max_request_mp, "max_request_mb": args.max_request_mb,
                         "max_response_mb": args.max_response_mb, "memory_cap_gb": args.memory_cap_gb, "backend": args.backend},
        }
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    print(json.dumps(report) if args.json else json.dumps(report, indent=1))
    ok = not unexpected and not wrong and report["server_alive"] and peak <= bound
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
