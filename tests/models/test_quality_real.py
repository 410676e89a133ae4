"""DFM and DFKDE on the real MVTec AD hazelnut subset: image AUROC worth shipping.

The subset has 2 good and 8 defective test images (16 pairs, AUROC in steps of 0.0625), so
these tests guard against a model that is broken on real parts (DFM once scored 0.375, below
chance), not a leaderboard figure. Input sizes other than 256 px are included because the old
DFKDE passed at 256 px by luck (0.875) and fell to 0.75 at 320 px.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeanomaly.models._pipeline import fit_run

pytestmark = pytest.mark.slow
MIN_IMAGE_AUROC = 0.8


@pytest.mark.parametrize(("model", "size"), [("dfm", 256), ("dfkde", 256), ("dfkde", 320)])
def test_image_auroc_on_hazelnut(model: str, size: int, mvtec_root: Path) -> None:
    result = fit_run(model, mvtec_root, None, category="hazelnut", image_size=size,
                     backbone="efficientnet_lite0", pretrained=True, random_state=0)
    auroc = result.checkpoint.metrics["image_auroc"]
    assert auroc >= MIN_IMAGE_AUROC, f"{model} at {size} px: image AUROC {auroc:.4f} on hazelnut"
