"""Peak memory of `edgeanomaly serve` per decoded pixel, by image format (issue 20); by hand.

    python benchmarks/bench_serve_pixel_cost.py BUNDLE

For each format, a fresh server (127.0.0.1, RLIMIT_DATA 3 GiB, `--max-request-mp 16
--max-response-mb 80`) scores one 4000x4000 image (16 MP), then the same image asking for
`anomaly_map` + `pred_mask` as binary; prints the growth of its peak resident memory (VmHWM)
over the resident memory after warm-up, in bytes per pixel. The bound in README.md
("Serve at scale") takes 32 B a pixel (edgeanomaly.serve._inference.BYTES_PER_PIXEL).
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "serve"))
from _serving import start_server, stop_server  # noqa: E402
from test_hostile_requests import _binary_bytes_request  # noqa: E402


def main(bundle: str) -> None:
    cases = {}
    img = np.zeros((4000, 4000, 4), np.uint16)
    img[1000:2000, 1000:3000] = 40000
    cases["png 16-bit RGBA"] = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 9])[1].tobytes()
    gray = np.zeros((4000, 4000), np.uint8)
    gray[1000:2000, 1000:3000] = 200
    cases["png 8-bit gray"] = cv2.imencode(".png", gray, [cv2.IMWRITE_PNG_COMPRESSION, 9])[1].tobytes()
    cases["jpeg RGB"] = cv2.imencode(".jpg", cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))[1].tobytes()
    hdr = np.zeros((4000, 4000, 3), np.float32)
    hdr[1000:2000, 1000:3000] = 0.5
    cases["hdr float"] = cv2.imencode(".hdr", hdr)[1].tobytes()
    cases["webp lossless RGBA"] = cv2.imencode(".webp", (img >> 8).astype(np.uint8), [cv2.IMWRITE_WEBP_QUALITY, 101])[1].tobytes()
    for what, data in cases.items():
        import tempfile

        with tempfile.TemporaryDirectory() as log_dir:
            s = start_server(Path(bundle), Path(log_dir), "--backend", "onnxruntime", "--max-request-mp", "16",
                             "--max-request-mb", "16", "--max-response-mb", "80", memory_cap=3 << 30)
            try:
                base = s.rss()
                status, _, _ = s.post(f"/v2/models/{Path(bundle).name.removesuffix('.bundle')}/infer", *_binary_bytes_request([data]))
                grow = s.peak_rss() - base
                status2, _, answer = s.post(f"/v2/models/{Path(bundle).name.removesuffix('.bundle')}/infer",
                                            *_binary_bytes_request([data], ["anomaly_map", "pred_mask"], True))
                grow2 = s.peak_rss() - base
            finally:
                stop_server(s)
        print(f"{what}: {len(data)} bytes; HTTP {status}, peak +{grow >> 20} MB = {grow / 16e6:.1f} B/px; with binary maps "
              f"HTTP {status2}, {len(answer) >> 20} MB answer, peak +{grow2 >> 20} MB = {grow2 / 16e6:.1f} B/px", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
