"""Inspect a camera, a video file or a folder the camera software writes into (torch-free).

    python examples/stream_camera.py BUNDLE SOURCE [--show]

SOURCE: a camera index (0), a video file, or a folder watched for new images.
"""

from __future__ import annotations

import sys

import cv2

import edgeanomaly as ea
from edgeanomaly.runtime import overlay


def has_gui() -> bool:
    """Whether this OpenCV build can open windows (opencv-python-headless cannot)."""
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GUI:"):
            return line.split(":", 1)[1].strip().upper() != "NONE"
    return True


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    bundle, source = sys.argv[1], sys.argv[2]
    show = "--show" in sys.argv
    if show and not has_gui():  # say it now, not as a cv2.error at the first frame
        print(
            "--show needs OpenCV with GUI support, but this is a headless build (edgeanomaly depends on "
            "opencv-python-headless). Install the GUI build in this environment:\n"
            "  pip uninstall -y opencv-python-headless && pip install opencv-python\n"
            "or run without --show (the results are printed either way).",
            file=sys.stderr,
        )
        return 2
    with ea.load(bundle) as detector:
        src = int(source) if source.isdigit() else source
        for frame, prediction in detector.stream(src):
            print(f"{prediction.source}: label={prediction.label} score={prediction.score:.3f}")
            if show:
                # Video/camera frames come as OpenCV gives them (BGR); folders give the file path.
                cv2.imshow("edgeanomaly", overlay(frame, prediction, color="BGR"))
                if cv2.waitKey(1) == 27:  # Esc
                    break
    return 0


if __name__ == "__main__":
    sys.exit(main())
