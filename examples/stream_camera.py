"""Inspect a camera, a video file or a folder the camera software writes into (torch-free).

    python examples/stream_camera.py BUNDLE SOURCE [--show]

SOURCE: a camera index (0), a video file, or a folder watched for new images.
"""

from __future__ import annotations

import sys

import cv2

from edgeanomaly.runtime import load, overlay


def main() -> None:
    bundle, source = sys.argv[1], sys.argv[2]
    show = "--show" in sys.argv
    with load(bundle) as detector:
        src = int(source) if source.isdigit() else source
        for frame, prediction in detector.stream(src):
            print(f"{prediction.source}: label={prediction.label} score={prediction.score:.3f}")
            if show:
                # Video/camera frames come as OpenCV gives them (BGR); folders give the file path.
                cv2.imshow("edgeanomaly", overlay(frame, prediction, color="BGR"))
                if cv2.waitKey(1) == 27:  # Esc
                    break


if __name__ == "__main__":
    main()
