"""Fit PatchCore on a dataset and export a bundle (training machine, needs the [train] extra).

    python examples/fit_and_export.py DATA_DIR [CATEGORY] [OUT_DIR]

Without DATA_DIR arguments a synthetic dataset is generated first.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import edgeanomaly as ea
from edgeanomaly.data import generate_synthetic_dataset


def main() -> None:
    out = Path(sys.argv[3]) if len(sys.argv) > 3 else Path(tempfile.mkdtemp(prefix="edgeanomaly-example-"))
    if len(sys.argv) > 1:
        data, category = Path(sys.argv[1]), (sys.argv[2] if len(sys.argv) > 2 else None)
    else:
        data, category = generate_synthetic_dataset(out / "data", ["metal"], n_train=32, n_test=4).root, "metal"
    run = ea.fit("patchcore", data, category=category, out=out / "run", image_size=256, random_state=0)
    print("test metrics of the torch model:", {k: round(v, 4) for k, v in run.metrics.items()})
    bundle = run.export(out / "bundle", formats=["onnx", "openvino"], precisions=["fp32", "fp16", "int8"])
    for artifact in bundle.export_report.artifacts:
        print(f"{artifact.name:15} {artifact.bytes / 1e6:6.1f} MB  parity {artifact.parity['max_rel_score_diff']:.1e}")
    print("bundle:", bundle.path)
    print("next, on the device: ea.load(bundle).predict(image), bundle.validate(data)")


if __name__ == "__main__":
    main()
