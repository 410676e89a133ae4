"""Quality of a trained model (FastFlow or EfficientAD) on an MVTec AD category, fitted in
process with given settings, with the image score and map read several ways (issue 23's
search for what limits them). Run by hand (not collected by pytest):

    PYTHONPATH=. python benchmarks/bench_trained_quality.py fastflow epochs=150 patience=10 score_top_fraction=0.1 \
        [size=256] [threads=2] [augment=none|shifts|flips|dihedral] [shift_grid=2] [layers=blocks.4,blocks.10] [random_state=0] [save=maps.npz]
    PYTHONPATH=. python benchmarks/bench_trained_quality.py efficientad epochs=100 [size=192] [threads=2]
    PYTHONPATH=. python benchmarks/bench_trained_quality.py patchcore fold=0/5

``fold=K/N`` (e.g. ``fold=0/5``) widens the test split with normal images the model never saw:
training image ``i`` is held out of the fit when ``i % N == K`` (fixed by the file order, not
by any result) and scored as a good test image beside the category's own test images; the
JSON then also holds ``image_auroc_wide``, ``pixel_auroc_wide`` and each other image score's
``image_auroc_wide_*`` over that wider split, and the
scores and names of every image in it. ``patchcore`` (the packaged recipe's settings) is the
one-pass reference for the same folds.
``save`` writes the test maps, scores, labels and masks to an ``.npz``. ``KEY=VALUE`` pairs
other than ``size``, ``threads``, ``augment``, ``layers``, ``data`` and ``save`` are the model's
keywords (JSON values); EfficientAD starts from the packaged recipe's settings. Prints one JSON
line: the fit's training summary, pixel AUROC and AUPRO of the model's map, and image AUROC of
several image scores. FastFlow: the map's maximum, the mean of its top 0.1/1/5/10 %, the max
after a Gaussian blur (sigma 4, 8), the same on the mean negative log-likelihood map
(``0.5 * mean_c z^2``, unsaturated) and per level. EfficientAD: the model's score and map, and
the student-teacher and autoencoder maps each alone. ``augment`` (FastFlow only) is the model's
setting: the training images moved within the finest stride (``shift_grid=2``: by half of it,
4 views; ``shift_grid=3``: by thirds, 9 views; a model keyword), their flips (4 views)
or all 8 rotations/flips of the square (the
held-out images drawn before the views; runs before 6 Dec drew them over the views, so an
image's flips could sit on both sides).
Metrics are the project's (checked against scikit-learn in tests/metrics).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGEANOMALY_SHARED", REPO.parent / "shared"))
RECIPE_EFFICIENTAD = dict(width=0.125, teacher_channels=64, strided=True, light_decoder=True, teacher_epochs=80, learning_rate=5e-4,
                          epochs=100, train_batch_size=1, patience=10)


def main() -> None:
    from edgeanomaly.components import GaussianBlur2d
    from _mvtec import load_category
    from edgeanomaly.metrics import aupro, auroc, pixel_auroc
    from edgeanomaly.models import EfficientAD, FastFlow, PatchCore

    model_name, *pairs = sys.argv[1:]
    args = dict(a.split("=", 1) for a in pairs)
    size = int(args.pop("size", 192 if model_name == "efficientad" else 256))
    torch.set_num_threads(int(args.pop("threads", 2)))
    augment = args.pop("augment", "none")
    layers = args.pop("layers", "blocks.4,blocks.10").split(",")
    data = Path(args.pop("data", SHARED / "data" / "mvtec_ad_reduced" / "hazelnut"))
    save = args.pop("save", None)
    fold = args.pop("fold", None)
    params = {k: json.loads(v) for k, v in args.items()}
    x, xt, labels, masks, test = load_category(data, size)
    names = [Path(s.path).parent.name + "/" + Path(s.path).name for s in test]
    x_out = x[:0]
    if fold is not None:  # hold out every N-th training image, offset K, and score it as good
        k, n = (int(v) for v in fold.split("/"))
        out_idx = [i for i in range(len(x)) if i % n == k]
        x_out, x = x[out_idx], x[[i for i in range(len(x)) if i % n != k]]
        train_names = sorted(p.name for p in (data / "train" / "good").iterdir())
        names_out = [f"train/good/{train_names[i]}" for i in out_idx]
    if model_name == "fastflow":
        model = FastFlow(layers=layers, augment=augment, **params)
    elif model_name == "patchcore":
        model = PatchCore(layers=layers, **{"coreset_ratio": 0.1, "num_neighbors": 9, **params})
    else:
        model = EfficientAD(layers=layers, **{**RECIPE_EFFICIENTAD, **params})
    t0 = time.time()
    model.fit([x[i : i + 8] for i in range(0, len(x), 8)])
    out = {"model": model_name, "args": pairs, "fit_s": round(time.time() - t0),
           **getattr(model, "training_summary_", {}), "train_images": len(x)}
    xw = torch.cat([xt, x_out])  # the test images, then the held-out normal ones (none without fold)
    labels_w = np.concatenate([labels, np.zeros(len(x_out), dtype=labels.dtype)])
    with torch.no_grad():
        score_w, amap_w = model(xw)
    score, amap = score_w[: len(xt)], amap_w[: len(xt)]
    if len(x_out):
        out["image_auroc_wide"] = round(auroc(score_w.numpy(), labels_w), 4)
        out["pixel_auroc_wide"] = round(pixel_auroc(amap_w[:, 0].numpy(),
                                                    np.concatenate([masks, np.zeros((len(x_out), *masks.shape[1:]), masks.dtype)])), 4)
        out["wide"] = {name: [round(float(v), 4), int(lab)] for name, v, lab in zip(names + names_out, score_w.numpy(), labels_w)}
    a = amap[:, 0]
    out["pixel_auroc"] = round(pixel_auroc(a.numpy(), masks), 4)
    out["aupro"] = round(aupro(a.numpy(), masks), 4)
    out["image_auroc"] = round(auroc(score.numpy(), labels), 4)

    def image(name: str, s: torch.Tensor) -> None:  # s: one score per image of xw
        out[f"image_auroc_{name}"] = round(auroc(s[: len(xt)].numpy(), labels), 4)
        if len(x_out):
            out[f"image_auroc_wide_{name}"] = round(auroc(s.numpy(), labels_w), 4)

    def top(flat: torch.Tensor, fraction: float) -> torch.Tensor:
        return flat.topk(max(1, int(fraction * flat.shape[1])), 1).values.mean(1)

    if model_name == "fastflow":
        flat = amap_w[:, 0].flatten(1)
        image("max", flat.amax(1))
        for fr in (0.001, 0.01, 0.05, 0.1):
            image(f"top{fr}", top(flat, fr))
        for sigma in (4, 8):
            image(f"blur{sigma}_max", GaussianBlur2d(sigma=sigma)(amap_w)[:, 0].flatten(1).amax(1))
        with torch.no_grad():
            nlls = [F.interpolate(0.5 * z.pow(2).mean(1, keepdim=True), size=xw.shape[-2:], mode="bilinear")[:, 0]
                    for z, _ in model._level_terms(model.embed(xw))]
        nll = sum(nlls) / len(nlls)
        out["pixel_auroc_nll"] = round(pixel_auroc(nll[: len(xt)].numpy(), masks), 4)
        for fr in (0.01, 0.1):
            image(f"nll_top{fr}", top(nll.flatten(1), fr))
        for i, level in enumerate(nlls):
            image(f"level{i}_max", level.flatten(1).amax(1))
        out["scores_top0.1"] = [round(float(v), 4) for v in top(flat[: len(xt)], 0.1)]
        out["labels"] = labels.tolist()
    elif isinstance(model, EfficientAD):
        with torch.no_grad():
            m_st, m_ae = model._maps(xw)
        for name, m in (("st", m_st), ("ae", m_ae)):
            pad = max(0, (size // 4 - m.shape[-2]) // 2)
            u = F.interpolate(F.pad(m, (pad,) * 4), size=(size, size), mode="bilinear")[:, 0]
            out[f"pixel_auroc_{name}"] = round(pixel_auroc(u[: len(xt)].numpy(), masks), 4)
            image(f"{name}_max", u.flatten(1).amax(1))
        out["teacher_loss"] = [round(r["train_loss"], 4) for r in model.training_history_ if r["stage"] == "teacher"]
        out["scores"] = [round(float(v), 4) for v in score]
        out["labels"] = labels.tolist()
        out["images"] = names
    if save:  # the test maps and scores, to compare or average runs afterwards
        np.savez_compressed(save, amap=a.numpy(), score=score.numpy(), labels=labels, masks=masks)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
