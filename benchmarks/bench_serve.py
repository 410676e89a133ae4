"""Load test of `edgeanomaly serve`, run by hand (not collected by pytest); a short run is in tests/serve.

    python benchmarks/bench_serve.py BUNDLE --images DIR [--clients 8] [--requests 10000]
        [--max-seconds 1800] [--backend onnxruntime] [--json]
    python benchmarks/bench_serve.py BUNDLE --images DIR --url http://127.0.0.1:8080 --model-name NAME

A bounded loopback client: ``--clients`` asyncio connections (HTTP/1.1 keep-alive, standard
library only) send ``--requests`` V2 infer requests in total, each one encoded image as a BYTES
tensor with the binary extension, and stop after ``--max-seconds`` whatever happens. Without
``--url`` the script starts `edgeanomaly serve` itself on 127.0.0.1 (a free port) and stops it
at the end; traffic never leaves the loopback interface.

Reports: throughput (requests/s), latency p50/p99 per request, the number of errors (non-200
answers, wrong scores), the server's resident memory after warm-up, at the end and its
maximum (sampled from /proc every 200 requests, also reported at each quarter of the run), and, for comparison, in-process
``Detector.predict`` on the same images and backend: p50/p99 one at a time and throughput.
Every answer's score is checked against in-process predict (FP32 tolerance).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _body(image: bytes) -> tuple[bytes, int]:
    raw = struct.pack("<I", len(image)) + image
    head = json.dumps({"inputs": [{"name": "image_bytes", "shape": [1], "datatype": "BYTES",
                                   "parameters": {"binary_data_size": len(raw)}}],
                       "outputs": [{"name": "raw_score"}, {"name": "pred_label"}]}).encode()
    return head + raw, len(head)


async def _client(host: str, port: int, path: str, jobs: asyncio.Queue, bodies: list, expected: list[float],
                  out: dict, deadline: float) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.monotonic() < deadline:
            try:
                i = jobs.get_nowait()
            except asyncio.QueueEmpty:
                return
            body, head_len = bodies[i % len(bodies)]
            t0 = time.perf_counter()
            writer.write(
                f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/octet-stream\r\n"
                f"Inference-Header-Content-Length: {head_len}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
            )
            await writer.drain()
            status_line = await reader.readline()
            headers = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                k, _, v = line.decode().partition(":")
                headers[k.strip().lower()] = v.strip()
            data = await reader.readexactly(int(headers.get("content-length", 0)))
            out["latency"].append(time.perf_counter() - t0)
            ok = status_line.split()[1:2] == [b"200"]
            if ok:
                reply = json.loads(data)
                raw = reply["outputs"][0]["data"][0]
                want = expected[i % len(expected)]
                ok = abs(raw - want) <= 1e-5 * max(1.0, abs(want))
            if not ok:
                out["errors"] += 1
            out["done"] += 1
            if out["done"] % 200 == 0 and out.get("pid"):
                out["rss"].append(_rss_mb(out["pid"]))
    finally:
        writer.close()


async def _load(url: str, model: str, bodies: list, expected: list[float], clients: int, requests: int, max_seconds: float,
                pid: int | None) -> dict:
    parsed = urllib.parse.urlsplit(url)
    jobs: asyncio.Queue = asyncio.Queue()
    for i in range(requests):
        jobs.put_nowait(i)
    out: dict = {"latency": [], "errors": 0, "done": 0, "rss": [], "pid": pid}
    deadline = time.monotonic() + max_seconds
    t0 = time.perf_counter()
    await asyncio.gather(*[_client(parsed.hostname, parsed.port, f"/v2/models/{model}/infer", jobs, bodies, expected, out, deadline)
                           for _ in range(clients)])
    out["wall_s"] = time.perf_counter() - t0
    return out


def _start_server(bundle: str, backend: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "edgeanomaly.cli", "serve", bundle, "--host", "127.0.0.1", "--http-port", str(port),
                             "--grpc-port", "0", "--backend", backend, "--model-name", "bench"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"edgeanomaly serve exited with {proc.returncode}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url + "/v2/health/ready", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    raise SystemExit("edgeanomaly serve was not ready within 300 s")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle")
    ap.add_argument("--images", required=True, help="Folder of PNG/JPEG files, sent round-robin.")
    ap.add_argument("--url", default=None, help="A running server (default: start one on 127.0.0.1).")
    ap.add_argument("--model-name", default="bench")
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--max-seconds", type=float, default=1800.0)
    ap.add_argument("--baseline", type=int, default=200, help="In-process predictions timed for comparison.")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    from edgeanomaly.data import is_image_file
    from edgeanomaly.runtime import load

    paths = sorted(p for p in Path(args.images).rglob("*") if p.is_file() and is_image_file(p))[:64]
    if not paths:
        raise SystemExit(f"no images in {args.images}")
    bodies = [_body(p.read_bytes()) for p in paths]
    with load(args.bundle, backend=args.backend) as det:
        expected = [p.raw_score for p in det.predict_batch([str(p) for p in paths])]
        lat = []
        for i in range(args.baseline):
            t0 = time.perf_counter()
            det.predict(str(paths[i % len(paths)]))
            lat.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        n = sum(1 for _ in det.predict_many([str(paths[i % len(paths)]) for i in range(args.baseline)]))
        local_ips = n / (time.perf_counter() - t0)

    proc, url = (None, args.url) if args.url else _start_server(args.bundle, args.backend)
    try:
        pid = proc.pid if proc else None
        warm = asyncio.run(_load(url, args.model_name, bodies, expected, args.clients, 2 * args.clients, 120, pid))
        rss_start = _rss_mb(pid) if pid else float("nan")
        res = asyncio.run(_load(url, args.model_name, bodies, expected, args.clients, args.requests, args.max_seconds, pid))
        rss_end = _rss_mb(pid) if pid else float("nan")
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    ms = np.asarray(res["latency"]) * 1e3
    report = {
        "requests": res["done"], "clients": args.clients, "errors": res["errors"] + warm["errors"],
        "wall_s": round(res["wall_s"], 1), "throughput_rps": round(res["done"] / res["wall_s"], 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 1), "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "inprocess_p50_ms": round(float(np.percentile(np.asarray(lat) * 1e3, 50)), 1),
        "inprocess_p99_ms": round(float(np.percentile(np.asarray(lat) * 1e3, 99)), 1),
        "inprocess_throughput_ips": round(local_ips, 1),
        "rss_mb_after_warmup": round(rss_start, 1), "rss_mb_end": round(rss_end, 1),
        "rss_mb_max": round(max(res["rss"], default=rss_end), 1),
        # resident memory at each quarter of the run: flat means no growth per request
        "rss_mb_quarters": [round(res["rss"][min(len(res["rss"]) - 1, k * len(res["rss"]) // 4)], 1)
                            for k in (1, 2, 3, 4)] if res["rss"] else [],
        "backend": args.backend,
        "image_size": list(det.input_size),
    }
    if args.json:
        print(json.dumps(report))
    else:
        for k, v in report.items():
            print(f"{k:>26}: {v}")
    return report


if __name__ == "__main__":
    main()
