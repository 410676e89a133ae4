"""EfficientAD (Batzner et al., "EfficientAD: Accurate Visual Anomaly Detection at
Millisecond-Level Latencies", WACV 2024), the small variant: a patch description network
(PDN-small) teacher, a student of the same shape with twice the output channels, and an
autoencoder.

Networks (the paper's PDN-small, no padding): conv 4x4 (128) - ReLU - avgpool 2 - conv 4x4 (256)
- ReLU - avgpool 2 - conv 3x3 (256) - ReLU - conv 4x4 (C); a 256 px image gives a 56x56 map
(33 px receptive field). ``width`` scales the 128/256 hidden channels (1.0 is the paper's).
The student outputs 2C channels: the first C regress the teacher, the last C the autoencoder.
The autoencoder is the paper's (6 strided convolutions to a 1x1 code, then upsample-conv
blocks with dropout back to the teacher's map size).

The teacher. The paper distils the PDN from a WideResNet-101 on ImageNet; neither ImageNet nor
a pretrained PDN can be had here. The teacher is distilled instead from this model's frozen,
pretrained ``backbone`` (its ``layers``, resampled to the PDN's map and concatenated:
C = their channels) on the training images and their flips, for ``teacher_epochs``: an honest
but weaker teacher (a few dozen images of one part, not 1.2 M varied ones); docs/BENCHMARKS.md
measures what it gives.

Student and autoencoder: ``loss = L_hard + L_AE + L_STAE``:
- ``L_hard``: the mean of those squared differences ``(T_hat - S[:C])^2`` that are at least
  their ``hard_quantile`` (0.999) quantile (the hard-feature loss);
- ``L_AE = mean((T_hat(A(I)) - AE(A(I)))^2)`` and ``L_STAE = mean((AE(A(I)) - S[C:](A(I)))^2)``,
  ``A`` a random brightness, contrast or saturation change (factor in [0.8, 1.2]), as in the
  paper. ``T_hat`` is the teacher's output normalised per channel with its mean and std over
  the training images.
- The paper's ImageNet penalty on the student (``mean(S(P)^2)`` for ImageNet images P) is
  dropped: there are no ImageNet images, and penalising the student on the normal images
  themselves would fight ``L_hard``.
Adam (lr 1e-4, weight decay 1e-5, the paper's) for ``epochs``; a seeded ``validation_fraction``
of the normal images is held out: its loss picks the best epoch and stops training after
``patience`` epochs without improvement, or after ``max_minutes`` (the teacher's time counted).

Anomaly map: ``M_ST = mean_c (T_hat - S[:C])^2`` and ``M_AE = mean_c (AE - S[C:])^2``; each is
normalised with the quantiles ``q_a`` (0.9) and ``q_b`` (0.995) of its values on the held-out
normal images, ``0.1 (M - q_a) / (q_b - q_a)``, and the map is their mean, zero-padded by the
PDN's border and resized to the input. Image score: the map's maximum.
"""

from __future__ import annotations

import copy
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edgeanomaly.errors import ConfigError
from edgeanomaly.models._base import AnomalyModel
from edgeanomaly.models._registry import register_model

__all__ = ["EfficientAD", "hard_feature_loss", "quantile", "normalise_map"]

EpochCallback = Callable[[dict[str, Any]], None]

#: Distillation targets: stride 8 and 16 of each backbone (the paper distils WideResNet's
#: layer2 and layer3).
TEACHER_LAYERS: dict[str, tuple[str, ...]] = {
    "resnet18": ("layer2", "layer3"),
    "wide_resnet50_2": ("layer2", "layer3"),
    "efficientnet_lite0": ("blocks.4", "blocks.10"),
}


def quantile(x: torch.Tensor, q: float) -> torch.Tensor:
    """The ``q`` quantile of all of ``x``'s values, linear interpolation (numpy's default);
    through ``kthvalue``, so it has no size limit (``torch.quantile`` stops at 2^24 values)."""
    flat = x.reshape(-1)
    n = flat.numel()
    pos = q * (n - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, n - 1)
    a = flat.kthvalue(lo + 1).values
    b = flat.kthvalue(hi + 1).values
    return a + (b - a) * (pos - lo)


def hard_feature_loss(teacher: torch.Tensor, student: torch.Tensor, q: float) -> torch.Tensor:
    """Mean of the squared differences that are at least their ``q`` quantile."""
    d = (teacher - student).pow(2)
    with torch.no_grad():
        threshold = quantile(d.detach(), q)
    return d[d >= threshold].mean()


def normalise_map(m: torch.Tensor, q_a: torch.Tensor, q_b: torch.Tensor) -> torch.Tensor:
    """The paper's quantile normalisation: ``q_a`` maps to 0, ``q_b`` to 0.1."""
    return 0.1 * (m - q_a) / (q_b - q_a)


def _pdn(out_channels: int, width: float) -> nn.Sequential:
    a, b = max(1, int(round(128 * width))), max(1, int(round(256 * width)))
    return nn.Sequential(
        nn.Conv2d(3, a, 4), nn.ReLU(inplace=True), nn.AvgPool2d(2, 2),
        nn.Conv2d(a, b, 4), nn.ReLU(inplace=True), nn.AvgPool2d(2, 2),
        nn.Conv2d(b, b, 3), nn.ReLU(inplace=True),
        nn.Conv2d(b, out_channels, 4),
    )


def pdn_size(n: int) -> int:
    """The PDN's map size for an input side of ``n`` pixels."""
    return ((n - 3) // 2 - 3) // 2 - 2 - 3


class _AutoEncoder(nn.Module):
    """The paper's autoencoder: 6 strided convolutions to a 1x1 code (the last with an 8x8
    kernel; inputs other than 256 px are resized to 8x8 before it), then 7 upsample-conv blocks
    (dropout 0.2) and a 3x3 convolution to the teacher's channels at its map size."""

    def __init__(self, out_channels: int) -> None:
        super().__init__()
        enc = [nn.Conv2d(3, 32, 4, 2, 1), nn.Conv2d(32, 32, 4, 2, 1), nn.Conv2d(32, 64, 4, 2, 1),
               nn.Conv2d(64, 64, 4, 2, 1), nn.Conv2d(64, 64, 4, 2, 1)]
        self.encoder = nn.ModuleList(enc)
        self.code = nn.Conv2d(64, 64, 8)
        self.decoder = nn.ModuleList(nn.Conv2d(64, 64, 4, 1, 2) for _ in range(7))
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Conv2d(64, 64, 3, 1, 1)
        self.out = nn.Conv2d(64, out_channels, 3, 1, 1)

    def forward(self, x: torch.Tensor, out_size: int) -> torch.Tensor:
        h = int(x.shape[-2])
        for conv in self.encoder:
            x = F.relu(conv(x))
        if tuple(x.shape[-2:]) != (8, 8):
            x = F.interpolate(x, size=(8, 8), mode="bilinear", align_corners=False)
        x = self.code(x)
        # the paper's sizes at 256 px: 3, 8, 15, 32, 63, 127, then the map size (56)
        sizes = [max(1, h // 64 - 1), h // 32, h // 16 - 1, h // 8, h // 4 - 1, h // 2 - 1]
        for i, conv in enumerate(self.decoder[:6]):
            x = F.interpolate(x, size=(sizes[i], sizes[i]), mode="bilinear", align_corners=False)
            x = self.dropout(F.relu(conv(x)))
        x = F.interpolate(x, size=(out_size, out_size), mode="bilinear", align_corners=False)
        x = F.relu(self.head(x))
        return self.out(x)


@register_model
class EfficientAD(AnomalyModel):
    """EfficientAD-S: teacher (distilled from ``backbone`` here), student and autoencoder.

    Args:
        backbone, layers: the pretrained network the teacher is distilled from and its layers
            (default: its stride-8 and stride-16 layers); their channels are the teacher's.
        width: scales the PDN's hidden channels (1.0: the paper's PDN-small).
        teacher_epochs: passes over the training images (and their flips) distilling the teacher.
        teacher_learning_rate: Adam's, for the teacher.
        epochs: at most this many passes training student and autoencoder.
        learning_rate, weight_decay: Adam's (paper: 1e-4, 1e-5).
        train_batch_size: images per optimiser step (paper: 1).
        hard_quantile: the hard-feature loss's quantile (paper: 0.999).
        q_a, q_b: the map normalisation's quantiles (paper: 0.9 and 0.995).
        validation_fraction, patience, max_minutes, random_state: as FastFlow's.
    """

    name = "efficientad"
    task = "segmentation"
    min_distinct_images = 2
    int8_head_refit = False  # teacher, student and autoencoder are trained
    default_layers = TEACHER_LAYERS

    def __init__(
        self,
        backbone: str = "efficientnet_lite0",
        layers: Sequence[str] | None = None,
        width: float = 1.0,
        teacher_epochs: int = 20,
        teacher_learning_rate: float = 1e-3,
        epochs: int = 100,
        learning_rate: float = 1e-4,
        weight_decay: float = 1e-5,
        train_batch_size: int = 4,
        hard_quantile: float = 0.999,
        q_a: float = 0.9,
        q_b: float = 0.995,
        validation_fraction: float = 0.1,
        patience: int = 10,
        max_minutes: float | None = None,
        pretrained: bool = True,
        weights: str | os.PathLike[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        random_state: int | None = 0,
    ) -> None:
        _check_settings(width, teacher_epochs, teacher_learning_rate, epochs, learning_rate, weight_decay,
                        train_batch_size, hard_quantile, q_a, q_b, validation_fraction, patience, max_minutes)
        settings = {
            "width": float(width), "teacher_epochs": int(teacher_epochs),
            "teacher_learning_rate": float(teacher_learning_rate), "epochs": int(epochs),
            "learning_rate": float(learning_rate), "weight_decay": float(weight_decay),
            "train_batch_size": int(train_batch_size), "hard_quantile": float(hard_quantile),
            "q_a": float(q_a), "q_b": float(q_b), "validation_fraction": float(validation_fraction),
            "patience": int(patience), "max_minutes": None if max_minutes is None else float(max_minutes),
        }
        super().__init__(backbone, layers, pretrained, weights, cache_dir, random_state, settings)
        self.channels = sum(self.feature_extractor.channels[layer] for layer in self.layers)
        self._build()
        c = self.channels
        self.register_buffer("teacher_mean", torch.zeros(1, c, 1, 1))
        self.register_buffer("teacher_std", torch.ones(1, c, 1, 1))
        # the quantiles (q_st_a, q_st_b, q_ae_a, q_ae_b): empty until fitted
        self.register_buffer("map_quantiles", torch.zeros(0))
        self.training_history_: list[dict[str, Any]] = []
        self.epoch_callback: EpochCallback | None = None
        self.training_state_path: Path | None = None
        self.resume_training = False

    def _seed(self) -> int:
        return 0 if self.random_state is None else int(self.random_state)

    def _build(self) -> None:
        state = torch.random.get_rng_state()
        try:
            torch.manual_seed(self._seed())  # the global generator is restored below
            c, w = self.channels, self._settings["width"]
            self.teacher = _pdn(c, w)
            self.student = _pdn(2 * c, w)
            self.autoencoder = _AutoEncoder(c)
        finally:
            torch.random.set_rng_state(state)

    # ----------------------------------------------------------------- networks
    def _normalised(self, images: torch.Tensor) -> torch.Tensor:
        fe = self.feature_extractor
        return (images - fe._mean) / fe._std

    def embed(self, images: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """(N, 3, H, W) -> the teacher's normalised map, (N, C, h, w)."""
        return (self.teacher(self._normalised(images)) - self.teacher_mean) / self.teacher_std

    def _maps(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self._normalised(images)
        t = (self.teacher(x) - self.teacher_mean) / self.teacher_std
        s = self.student(x)
        ae = self.autoencoder(x, int(t.shape[-2]))
        c = self.channels
        m_st = (t - s[:, :c]).pow(2).mean(dim=1, keepdim=True)
        m_ae = (ae - s[:, c:]).pow(2).mean(dim=1, keepdim=True)
        return m_st, m_ae

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m_st, m_ae = self._maps(images)
        q = self.map_quantiles
        amap = 0.5 * normalise_map(m_st, q[0], q[1]) + 0.5 * normalise_map(m_ae, q[2], q[3])
        h, w = int(images.shape[-2]), int(images.shape[-1])
        pad = max(0, (h // 4 - int(amap.shape[-2])) // 2)
        amap = F.pad(amap, (pad, pad, pad, pad))
        amap = F.interpolate(amap, size=(h, w), mode="bilinear", align_corners=False)
        return amap.amax(dim=(1, 2, 3)), amap

    # ----------------------------------------------------------------- training
    def fit(self, batches: Iterable[torch.Tensor]) -> "EfficientAD":  # type: ignore[override]
        """Distil the teacher, train student and autoencoder, then set the map quantiles, on
        batches of normal images (N, 3, H, W) float32 RGB in [0, 1]. Fitting again starts from
        scratch (same seed), unless ``resume_training`` and ``training_state_path`` hold an
        interrupted fit's state (saved after each whole epoch of either stage)."""
        images = self._collect(batches)
        n = images.shape[0]
        self._build()
        self.to(images.device)
        train_idx, val_idx = self._split(n)
        # the autoencoder's dropout draws from torch's global generator: seeded for the fit (and
        # saved with the training state), then given back as it was
        global_rng = torch.random.get_rng_state()
        torch.manual_seed(self._seed() + 2)
        try:
            run = _Training(self, n)
            if self.resume_training:
                run.restore()
            stopped = self._distil(images, run)
            if stopped is None:
                stopped = self._train(images, train_idx, val_idx, run)
        finally:
            torch.random.set_rng_state(global_rng)
        self.student.load_state_dict(run.best["student"])
        self.autoencoder.load_state_dict(run.best["autoencoder"])
        self.eval()
        with torch.no_grad():
            held = images[val_idx] if len(val_idx) else images[train_idx]
            maps = [self._maps(held[i : i + 8]) for i in range(0, len(held), 8)]
            m_st = torch.cat([m[0] for m in maps])
            m_ae = torch.cat([m[1] for m in maps])
            s = self._settings
            self.map_quantiles = torch.stack([quantile(m_st, s["q_a"]), quantile(m_st, s["q_b"]),
                                              quantile(m_ae, s["q_a"]), quantile(m_ae, s["q_b"])])
        student = [r for r in run.history if r["stage"] == "student"]
        best = min(student, key=lambda r: r["val_loss"])["epoch"] if student else 0
        for r in run.history:
            r["best"] = r["stage"] == "student" and r["epoch"] == best
        self.training_history_ = run.history
        self.training_summary_ = {"teacher_epochs_run": sum(r["stage"] == "teacher" for r in run.history),
                                  "epochs_run": len(student), "best_epoch": best, "best_val_loss": run.best_loss,
                                  "stopped_by": stopped, "n_train": len(train_idx), "n_validation": len(val_idx),
                                  "seconds": round(run.seconds(), 3), "resumed_after_epoch": run.resumed_after}
        self.n_train_images_ = n
        return self

    @torch.no_grad()
    def _collect(self, batches: Iterable[torch.Tensor]) -> torch.Tensor:
        distinct: set[bytes] = set()
        kept = list(self._checked_images(batches, distinct))
        n = sum(int(b.shape[0]) for b in kept)
        if n == 0:
            raise ValueError("EfficientAD.fit() received no images: expected at least one batch of normal images")
        self._check_distinct(n, distinct)
        return torch.cat(kept)

    def _split(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self._seed()))
        n_val = 0 if n < 4 else max(1, int(round(n * self._settings["validation_fraction"])))
        return order[n_val:], order[:n_val]

    @torch.no_grad()
    def _targets(self, images: torch.Tensor) -> torch.Tensor:
        """The backbone's layers resampled to the PDN's map, concatenated, per-channel
        standardised over the given images (the teacher's distillation target)."""
        size = pdn_size(int(images.shape[-2])), pdn_size(int(images.shape[-1]))
        out = []
        for i in range(0, len(images), 8):
            feats = self.feature_extractor(images[i : i + 8])
            out.append(torch.cat([F.interpolate(feats[layer], size=size, mode="bilinear", align_corners=False)
                                  for layer in self.layers], dim=1))
        t = torch.cat(out)
        mean = t.mean(dim=(0, 2, 3), keepdim=True)
        std = t.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
        return (t - mean) / std

    def _distil(self, images: torch.Tensor, run: "_Training") -> str | None:
        """Train the teacher on the images and their flips; then set its output statistics.
        Returns "max_minutes" when the time ran out here (the student is then not trained)."""
        s = self._settings
        stopped = None
        if run.stage == "teacher":
            views = torch.cat([images, images.flip(-1), images.flip(-2), images.flip(-1, -2)])
            targets = self._targets(views)
            x = self._normalised(views)
            for epoch in range(run.epoch + 1, s["teacher_epochs"] + 1):
                t0 = time.perf_counter()
                self.teacher.train()
                order = torch.randperm(len(views), generator=run.gen)
                total = 0.0
                for start in range(0, len(order), s["train_batch_size"]):
                    chunk = order[start : start + s["train_batch_size"]]
                    with torch.enable_grad():
                        loss = (self.teacher(x[chunk]) - targets[chunk]).pow(2).mean()
                        run.teacher_optimiser.zero_grad(set_to_none=True)
                        loss.backward()
                    run.teacher_optimiser.step()
                    total += float(loss.detach()) * len(chunk)
                self.teacher.eval()
                record = {"stage": "teacher", "epoch": epoch, "train_loss": total / len(views),
                          "seconds": round(time.perf_counter() - t0, 3)}
                run.finished(record)
                # the teacher is distilled on all the images: its "held-out" loss is its training loss
                self._callback({**record, "val_loss": record["train_loss"], "best_epoch": epoch}, s["teacher_epochs"])
                if self._out_of_time(run):
                    stopped = "max_minutes"
                    break
            run.begin_student()
        self.teacher.eval()
        self.teacher.requires_grad_(False)
        with torch.no_grad():
            t = torch.cat([self.teacher(self._normalised(images[i : i + 8])) for i in range(0, len(images), 8)])
            self.teacher_mean = t.mean(dim=(0, 2, 3), keepdim=True)
            self.teacher_std = t.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
        return stopped

    def _losses(self, images: torch.Tensor, augmented: torch.Tensor) -> torch.Tensor:
        c = self.channels
        with torch.no_grad():
            t = self.embed(images)
            t_aug = self.embed(augmented)
        s = self.student(self._normalised(images))[:, :c]
        l_hard = hard_feature_loss(t, s, self._settings["hard_quantile"])
        x_aug = self._normalised(augmented)
        ae = self.autoencoder(x_aug, int(t.shape[-2]))
        s_ae = self.student(x_aug)[:, c:]
        return l_hard + (t_aug - ae).pow(2).mean() + (ae - s_ae).pow(2).mean()

    def _train(self, images: torch.Tensor, train_idx: torch.Tensor, val_idx: torch.Tensor, run: "_Training") -> str:
        s = self._settings
        stopped = "epochs"
        if run.epoch and run.epoch - run.best_epoch >= s["patience"]:
            return "early stopping"
        for epoch in range(run.epoch + 1, s["epochs"] + 1):
            t0 = time.perf_counter()
            self.student.train()
            self.autoencoder.train()
            order = train_idx[torch.randperm(len(train_idx), generator=run.gen)]
            total = 0.0
            for start in range(0, len(order), s["train_batch_size"]):
                chunk = images[order[start : start + s["train_batch_size"]]]
                with torch.enable_grad():
                    loss = self._losses(chunk, _augment(chunk, run.gen))
                    run.optimiser.zero_grad(set_to_none=True)
                    loss.backward()
                run.optimiser.step()
                total += float(loss.detach()) * len(chunk)
            self.student.eval()
            self.autoencoder.eval()
            train_loss = total / max(1, len(order))
            if len(val_idx):
                with torch.no_grad():
                    held = images[val_idx]
                    # a fixed augmentation of the held-out images: the same every epoch
                    val_loss = float(self._losses(held, _augment(held, torch.Generator().manual_seed(self._seed() + 7))))
            else:
                val_loss = train_loss
            record = {"stage": "student", "epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                      "seconds": round(time.perf_counter() - t0, 3)}
            run.finished(record)
            self._callback({**record, "best_epoch": run.best_epoch}, s["epochs"])
            if epoch - run.best_epoch >= s["patience"]:
                return "early stopping"
            if self._out_of_time(run):
                return "max_minutes"
        return stopped

    def _callback(self, record: dict[str, Any], epochs: int) -> None:
        if self.epoch_callback is not None:
            self.epoch_callback({**record, "epochs": epochs})

    def _out_of_time(self, run: "_Training") -> bool:
        limit = self._settings["max_minutes"]
        return limit is not None and run.seconds() >= 60 * limit

    def _finish(self) -> None:  # pragma: no cover - fit() is overridden
        raise TypeError("EfficientAD trains its networks in fit()")

    def _fitted_tensors(self) -> Sequence[torch.Tensor]:
        return (self.map_quantiles,)


def _augment(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The paper's autoencoder augmentation: per image one of brightness, contrast or
    saturation, by a factor drawn uniformly in [0.8, 1.2] (torchvision's formulas)."""
    n = images.shape[0]
    kind = torch.randint(0, 3, (n,), generator=gen)
    factor = (0.8 + 0.4 * torch.rand(n, generator=gen)).to(images.device).view(n, 1, 1, 1)
    kind = kind.to(images.device).view(n, 1, 1, 1)
    gray = (0.299 * images[:, 0:1] + 0.587 * images[:, 1:2] + 0.114 * images[:, 2:3])
    bright = images * factor
    contrast = factor * images + (1 - factor) * gray.mean(dim=(1, 2, 3), keepdim=True)
    saturation = factor * images + (1 - factor) * gray
    out = torch.where(kind == 0, bright, torch.where(kind == 1, contrast, saturation))
    return out.clamp(0, 1)


class _Training:
    """One EfficientAD training run: stage ("teacher" then "student"), optimisers, shuffling
    generator, history, best student epoch; saved after each whole epoch to
    ``training_state_path`` and restored from it."""

    def __init__(self, model: EfficientAD, n_images: int) -> None:
        s = model._settings
        self.model, self.n_images = model, n_images
        self.gen = torch.Generator().manual_seed(model._seed() + 1)
        self.teacher_optimiser = torch.optim.Adam(model.teacher.parameters(), lr=s["teacher_learning_rate"])
        self.optimiser = torch.optim.Adam(list(model.student.parameters()) + list(model.autoencoder.parameters()),
                                          lr=s["learning_rate"], weight_decay=s["weight_decay"])
        self.stage = "teacher"
        self.history: list[dict[str, Any]] = []
        self.best_loss, self.best_epoch = math.inf, 0
        self.best = self._weights()
        self.epoch = 0
        self.resumed_after: int | None = None
        self._before = 0.0
        self._start = time.perf_counter()

    def _weights(self) -> dict[str, Any]:
        return {"student": copy.deepcopy(self.model.student.state_dict()),
                "autoencoder": copy.deepcopy(self.model.autoencoder.state_dict())}

    def seconds(self) -> float:
        return self._before + time.perf_counter() - self._start

    def begin_student(self) -> None:
        self.stage, self.epoch = "student", 0

    def _identity(self) -> dict[str, Any]:
        return {"params": self.model.get_config()["params"], "n_images": self.n_images}

    def finished(self, record: dict[str, Any]) -> None:
        self.history.append(record)
        self.epoch = record["epoch"]
        if record["stage"] == "student" and record["val_loss"] < self.best_loss:
            self.best_loss, self.best_epoch = record["val_loss"], record["epoch"]
            self.best = self._weights()
        path = self.model.training_state_path
        if path is None:
            return
        m = self.model
        state = {"format": "edgeanomaly-efficientad-training", "identity": self._identity(), "stage": self.stage,
                 "epoch": self.epoch, "history": self.history, "best_loss": self.best_loss,
                 "best_epoch": self.best_epoch, "best": self.best, "teacher": m.teacher.state_dict(),
                 "student": m.student.state_dict(), "autoencoder": m.autoencoder.state_dict(),
                 "teacher_optimiser": self.teacher_optimiser.state_dict(), "optimiser": self.optimiser.state_dict(),
                 "generator": self.gen.get_state(), "global_generator": torch.random.get_rng_state(),
                 "seconds": self.seconds()}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)

    def restore(self) -> None:
        path = self.model.training_state_path
        if path is None or not path.is_file():
            raise ConfigError(f"Nothing to resume: no training state at {path} (an EfficientAD fit saves one after each epoch)")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("identity") != self._identity():
            raise ConfigError(f"The training state at {path} is of another fit (other settings or images); "
                              "start again with --overwrite")
        m = self.model
        m.teacher.load_state_dict(state["teacher"])
        m.student.load_state_dict(state["student"])
        m.autoencoder.load_state_dict(state["autoencoder"])
        self.teacher_optimiser.load_state_dict(state["teacher_optimiser"])
        self.optimiser.load_state_dict(state["optimiser"])
        self.gen.set_state(state["generator"])
        torch.random.set_rng_state(state["global_generator"])
        self.stage, self.epoch = state["stage"], int(state["epoch"])
        self.history = list(state["history"])
        self.best_loss, self.best_epoch, self.best = float(state["best_loss"]), int(state["best_epoch"]), state["best"]
        self.resumed_after, self._before = self.epoch, float(state["seconds"])


def _check_settings(width: Any, teacher_epochs: Any, teacher_lr: Any, epochs: Any, lr: Any, wd: Any, batch: Any,
                    hard_q: Any, q_a: Any, q_b: Any, fraction: Any, patience: Any, minutes: Any) -> None:
    def positive_int(name: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"Expected {name} as an integer >= 1, got {value!r}")

    def number(name: str, value: Any, ok: Callable[[float], bool], what: str) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not ok(value):
            raise ConfigError(f"Expected {name} {what}, got {value!r}")

    positive_int("teacher_epochs", teacher_epochs)
    positive_int("epochs", epochs)
    positive_int("train_batch_size", batch)
    positive_int("patience", patience)
    number("width", width, lambda v: v > 0, "> 0")
    number("teacher_learning_rate", teacher_lr, lambda v: v > 0, "> 0")
    number("learning_rate", lr, lambda v: v > 0, "> 0")
    number("weight_decay", wd, lambda v: v >= 0, ">= 0")
    number("hard_quantile", hard_q, lambda v: 0 <= v < 1, "in [0, 1)")
    number("q_a", q_a, lambda v: 0 <= v < 1, "in [0, 1)")
    number("q_b", q_b, lambda v: 0 < v <= 1, "in (0, 1]")
    if isinstance(q_a, (int, float)) and isinstance(q_b, (int, float)) and not q_a < q_b:
        raise ConfigError(f"Expected q_a < q_b, got q_a={q_a!r}, q_b={q_b!r}")
    number("validation_fraction", fraction, lambda v: 0 <= v < 1, "in [0, 1)")
    if minutes is not None:
        number("max_minutes", minutes, lambda v: v > 0, "> 0 or None")
