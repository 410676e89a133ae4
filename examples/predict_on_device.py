"""Score images with a bundle on the device: no torch needed (base install).

    python examples/predict_on_device.py BUNDLE IMAGE_OR_FOLDER [...]

Like ``edgeanomaly predict``: a file that cannot be read (corrupt, truncated, not an image)
is reported on its own line and the run goes on; the exit code is 3 when some failed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import edgeanomaly as ea
from edgeanomaly.data import is_image_file
from edgeanomaly.errors import ImageReadError

EXIT_SOME_FAILED = 3


def image_paths(args: list[str]) -> list[Path]:
    """Files as given; folders searched recursively for image files."""
    out: list[Path] = []
    for arg in map(Path, args):
        if arg.is_dir():
            out += sorted(p for p in arg.rglob("*") if p.is_file() and is_image_file(p))
        else:
            out.append(arg)
    return out


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    bundle, paths = sys.argv[1], image_paths(sys.argv[2:])
    failed = 0
    with ea.load(bundle, backend="auto", device="CPU") as detector:
        print(f"{detector.artifact.name} on {detector.backend}/{detector.device}, precision {detector.precision}")
        for path in paths:
            try:
                prediction = detector.predict(path)
            except ImageReadError as exc:  # one bad file never stops a line
                failed += 1
                print(f"{path}: ERROR {exc}")
                continue
            verdict = "ANOMALOUS" if prediction.label else "ok"
            print(f"{path}: {verdict} score={prediction.score:.3f} ({prediction.timings['total']:.1f} ms)")
    print(f"{len(paths) - failed}/{len(paths)} scored, {failed} failed", file=sys.stderr)
    return EXIT_SOME_FAILED if failed else 0


if __name__ == "__main__":
    sys.exit(main())
