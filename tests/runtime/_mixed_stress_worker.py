"""Subprocess body of the mixed-runtime stress test: an ONNX Runtime and an OpenVINO detector
(throughput hint, bf16 execution where the CPU has it) on the same bundle, predicting concurrently from several threads.

Exit 0 only if every thread finished and every result equals the sequential one of its
detector. A crash (the fault this guards against) shows as a signal exit code.
"""

from __future__ import annotations

import sys
import threading

import numpy as np

from edgeanomaly.runtime import load


def main(bundle: str, rounds: int) -> int:
    from edgeanomaly.runtime._backends._openvino import core

    rng = np.random.default_rng(0)
    # bf16 where the CPU has it (the reported crash); elsewhere asking for it is refused.
    bf16 = "bf16" if "BF16" in core().get_property("CPU", "OPTIMIZATION_CAPABILITIES") else None
    detectors = [
        load(bundle, backend="onnxruntime"),
        load(bundle, backend="openvino", inference_precision=bf16, performance_hint="throughput"),
    ]
    h, w = detectors[0].input_size
    images = [rng.integers(0, 255, (h + 7, w + 5, 3), dtype=np.uint8) for _ in range(12)]
    expected = [[d.predict(img).raw_score for img in images] for d in detectors]
    failures: list[str] = []

    def work(k: int) -> None:
        det = detectors[k % 2]
        try:
            for _ in range(rounds):
                scores = [p.raw_score for p in det.predict_many(images, batch_size=1 + k % 3)]
                if not np.allclose(scores, expected[k % 2], rtol=1e-5, atol=1e-6):
                    failures.append(f"thread {k}: results differ from the sequential ones")
                    return
        except BaseException as exc:  # reported by the parent
            failures.append(f"thread {k}: {exc!r}")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for d in detectors:
        d.close()
    print("\n".join(failures) or "ok", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
