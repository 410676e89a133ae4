"""Score images with a bundle on the device: no torch needed (base install).

    python examples/predict_on_device.py BUNDLE IMAGE [IMAGE ...]
"""

from __future__ import annotations

import sys

from edgeanomaly.runtime import load


def main() -> None:
    bundle, images = sys.argv[1], sys.argv[2:]
    with load(bundle, backend="auto", device="CPU") as detector:
        print(f"{detector.artifact.name} on {detector.backend}/{detector.device}, precision {detector.precision}")
        for prediction in detector.predict_batch(images):
            verdict = "ANOMALOUS" if prediction.label else "ok"
            print(f"{prediction.source}: {verdict} score={prediction.score:.3f} ({prediction.timings['total']:.1f} ms)")


if __name__ == "__main__":
    main()
