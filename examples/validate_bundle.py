"""Check a bundle against ground truth and against its torch reference (torch-free).

    python examples/validate_bundle.py BUNDLE DATA_DIR [CATEGORY]

Exits with status 1 when any artifact drifted beyond its tolerance.
"""

from __future__ import annotations

import sys

import edgeanomaly as ea


def main() -> None:
    report = ea.validate(sys.argv[1], sys.argv[2], category=sys.argv[3] if len(sys.argv) > 3 else None)
    for a in report.artifacts:
        print(a.artifact, a.status, {k: round(v, 4) for k, v in a.metrics.items()}, a.reasons or "")
    sys.exit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
