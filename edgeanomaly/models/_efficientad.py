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
Adam (lr 1e-4, weight decay 1e-5, the paper's) for ``epochs``, the learning rate a tenth after
``lr_drop_at`` (0.95) of them, as the paper's after 95 % of its steps; a seeded ``validation_fraction``
of the normal images is held out: its loss picks the best epoch and stops training after
``patience`` epochs without improvement, or after ``max_minutes`` (the teacher's time counted:
the distillation ends once it has used ``teacher_time_share`` (half) of them, so the student
always trains, at least one epoch).

Anomaly map: ``M_ST = mean_c (T_hat - S[:C])^2`` and ``M_AE = mean_c (AE - S[C:])^2``; each is
normalised with the quantiles ``q_a`` (0.9) and ``q_b`` (0.995) of its values on the held-out
normal images, ``0.1 (M - q_a) / (q_b - q_a)``, and the map is their mean, zero-padded by the
PDN's border and resized to the input. Image score: the map's maximum.
"""

from __future__ import annotations

import math
import time
from typing import Any, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edgeanomaly.errors import ConfigError
from edgeanomaly.models._registry import register_model
from edgeanomaly.models._trained import (TrainedModel, TrainingRun, TrainingSettings, adam, check_number, check_positive_int,
                                         train_epoch)

__all__ = ["EfficientAD", "hard_feature_loss", "quantile", "normalise_map", "principal_axes"]

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


def principal_axes(maps: torch.Tensor, k: int, maps_per_block: int = 64) -> tuple[torch.Tensor, float]:
    """The ``k`` leading principal axes (C, k) of the channel vectors of ``maps`` (N, C, h, w)
    about zero (the maps are standardised), largest first, and the share of the total second
    moment they keep. The second moment is summed over blocks of ``maps_per_block`` maps in
    float64: a float64 copy of all the rows at once was the largest allocation of a fit."""
    c = maps.shape[1]
    second = torch.zeros(c, c, dtype=torch.float64)
    for i in range(0, len(maps), maps_per_block):
        rows = maps[i : i + maps_per_block].permute(0, 2, 3, 1).reshape(-1, c).double()
        second += rows.T @ rows
    values, vectors = torch.linalg.eigh(second)  # ascending
    kept = float(values[-k:].sum() / values.sum())
    return vectors[:, -k:].flip(-1).to(maps.dtype), kept


def _pdn(out_channels: int, width: float, strided: bool = False) -> nn.Sequential:
    """PDN-small; ``strided``: each "conv 4x4, ReLU, avgpool 2" pair as one conv 4x4 of stride 2
    (a quarter of the work of the two widest layers, the same depth)."""
    a, b = max(1, int(round(128 * width))), max(1, int(round(256 * width)))
    if strided:
        return nn.Sequential(
            nn.Conv2d(3, a, 4, 2), nn.ReLU(inplace=True),
            nn.Conv2d(a, b, 4, 2), nn.ReLU(inplace=True),
            nn.Conv2d(b, b, 3), nn.ReLU(inplace=True),
            nn.Conv2d(b, out_channels, 4),
        )
    return nn.Sequential(
        nn.Conv2d(3, a, 4), nn.ReLU(inplace=True), nn.AvgPool2d(2, 2),
        nn.Conv2d(a, b, 4), nn.ReLU(inplace=True), nn.AvgPool2d(2, 2),
        nn.Conv2d(b, b, 3), nn.ReLU(inplace=True),
        nn.Conv2d(b, out_channels, 4),
    )


def pdn_size(n: int, strided: bool = False) -> int:
    """The PDN's map size for an input side of ``n`` pixels."""
    if strided:
        return ((n - 4) // 2 + 1 - 4) // 2 + 1 - 2 - 3
    return ((n - 3) // 2 - 3) // 2 - 2 - 3


class _AutoEncoder(nn.Module):
    """The paper's autoencoder: 6 strided convolutions to a 1x1 code (the last with an 8x8
    kernel; inputs other than 256 px are resized to 8x8 before it), then 6 upsample-conv blocks
    (dropout 0.2), an upsampling to the teacher's map size, a 3x3 convolution and a 3x3
    convolution to the teacher's channels. The paper's decoder upsamples to 127 px (at 256 px)
    before coming down to the map size (56); ``light`` stops at the last stage below the map
    size and goes to the map from there (at 256 px: stages 3, 8, 15, 32, then 56; the 63 and
    127 px stages, most of the autoencoder's work, are left out)."""

    def __init__(self, out_channels: int, light: bool = False) -> None:
        super().__init__()
        enc = [nn.Conv2d(3, 32, 4, 2, 1), nn.Conv2d(32, 32, 4, 2, 1), nn.Conv2d(32, 64, 4, 2, 1),
               nn.Conv2d(64, 64, 4, 2, 1), nn.Conv2d(64, 64, 4, 2, 1)]
        self.encoder = nn.ModuleList(enc)
        self.code = nn.Conv2d(64, 64, 8)
        self.light = light
        self.decoder = nn.ModuleList(nn.Conv2d(64, 64, 4, 1, 2) for _ in range(4 if light else 6))
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
        for size, conv in zip(sizes, self.decoder):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
            x = self.dropout(F.relu(conv(x)))
        x = F.interpolate(x, size=(out_size, out_size), mode="bilinear", align_corners=False)
        x = F.relu(self.head(x))
        return self.out(x)


@register_model
class EfficientAD(TrainedModel):
    """EfficientAD-S: teacher (distilled from ``backbone`` here), student and autoencoder.

    Args:
        backbone, layers: the pretrained network the teacher is distilled from and its layers
            (default: its stride-8 and stride-16 layers); their channels are the teacher's.
        width: scales the PDN's hidden channels (1.0: the paper's PDN-small).
        teacher_epochs: passes over the distillation images (and their flips) distilling the teacher.
        teacher_images: the teacher is distilled on at most this many of the training images (a
            seeded choice; all of them when there are no more): its targets, four views of each,
            are held in memory, so the distillation's memory and time stop growing there (the
            student trains on every image).
        teacher_learning_rate: Adam's, for the teacher.
        teacher_time_share: with ``max_minutes``, the distillation ends (the teacher as it is
            then) once it has used this share of them, and the student trains in the rest, at
            least one epoch: on many images the teacher's epochs would otherwise use up the time
            and leave an untrained student.
        hard_quantile: the hard-feature loss's quantile (paper: 0.999).
        q_a, q_b: the map normalisation's quantiles (paper: 0.9 and 0.995).
        lr_drop_at: the fraction of ``epochs`` after which the student and autoencoder train at
            a tenth of ``learning_rate`` (paper: 0.95 of its steps; 1.0: no drop). A fit that
            ``max_minutes`` or early stopping ends sooner may not reach it.
        **options: keywords of every trained model (:class:`~edgeanomaly.models.TrainedModel`):
            ``pretrained``, ``weights``, ``cache_dir``, ``random_state`` and the training loop's
            settings (:class:`~edgeanomaly.models.TrainingSettings`), here for student and
            autoencoder: ``epochs`` (at most this many passes), ``learning_rate`` and
            ``weight_decay`` (Adam's; default the paper's 1e-4, 1e-5), ``train_batch_size``
            (default 4; the paper's is 1), ``validation_fraction``, ``patience``,
            ``max_minutes`` (the teacher's time counted; see ``teacher_time_share``).
    """

    name = "efficientad"
    task = "segmentation"
    default_layers = TEACHER_LAYERS
    training_defaults = TrainingSettings(epochs=100, learning_rate=1e-4, weight_decay=1e-5, train_batch_size=4)

    def __init__(
        self,
        backbone: str = "efficientnet_lite0",
        layers: Sequence[str] | None = None,
        width: float = 1.0,
        teacher_channels: int | None = None,
        strided: bool = False,
        light_decoder: bool = False,
        teacher_epochs: int = 20,
        teacher_images: int = 256,
        teacher_learning_rate: float = 1e-3,
        teacher_time_share: float = 0.5,
        hard_quantile: float = 0.999,
        q_a: float = 0.9,
        q_b: float = 0.995,
        lr_drop_at: float = 0.95,
        **options: Any,
    ) -> None:
        _check_settings(width, teacher_channels, teacher_epochs, teacher_learning_rate, hard_quantile, q_a, q_b)
        check_positive_int("teacher_images", teacher_images)
        check_number("lr_drop_at", lr_drop_at, lambda v: 0 < v <= 1, "in (0, 1]")
        check_number("teacher_time_share", teacher_time_share, lambda v: 0 < v < 1, "in (0, 1)")
        settings = {
            "width": float(width), "teacher_channels": None if teacher_channels is None else int(teacher_channels),
            "strided": bool(strided), "light_decoder": bool(light_decoder), "teacher_epochs": int(teacher_epochs),
            "teacher_images": int(teacher_images), "teacher_learning_rate": float(teacher_learning_rate),
            "teacher_time_share": float(teacher_time_share), "hard_quantile": float(hard_quantile),
            "q_a": float(q_a), "q_b": float(q_b), "lr_drop_at": float(lr_drop_at),
        }
        super().__init__(backbone, layers, settings, **options)
        target_channels = sum(self.feature_extractor.channels[layer] for layer in self.layers)
        if teacher_channels is not None and teacher_channels > target_channels:
            raise ConfigError(f"Expected teacher_channels <= {target_channels} (the channels of {', '.join(self.layers)} "
                              f"of {backbone}), got {teacher_channels}")
        self.channels = target_channels if teacher_channels is None else int(teacher_channels)
        self._build()
        c = self.channels
        self.register_buffer("teacher_mean", torch.zeros(1, c, 1, 1))
        self.register_buffer("teacher_std", torch.ones(1, c, 1, 1))
        # the quantiles (q_st_a, q_st_b, q_ae_a, q_ae_b): empty until fitted
        self.register_buffer("map_quantiles", torch.zeros(0))

    def _build(self) -> None:
        state = torch.random.get_rng_state()
        try:
            torch.manual_seed(self._seed())  # the global generator is restored below
            c, w, strided = self.channels, self._settings["width"], self._settings["strided"]
            self.teacher = _pdn(c, w, strided)
            self.student = _pdn(2 * c, w, strided)
            self.autoencoder = _AutoEncoder(c, self._settings["light_decoder"])
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
            self._distil(images, run)
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
        teacher_run = sum(r["stage"] == "teacher" for r in run.history)
        self.training_summary_ = {"teacher_epochs_run": teacher_run,
                                  # its share of max_minutes ends the distillation sooner
                                  "teacher_stopped_by": "teacher_epochs" if teacher_run >= s["teacher_epochs"] else "max_minutes",
                                  "epochs_run": len(student), "best_epoch": best, "best_val_loss": run.best_loss,
                                  "stopped_by": stopped, "n_train": len(train_idx), "n_validation": len(val_idx),
                                  "seconds": round(run.seconds(), 3), "resumed_after_epoch": run.resumed_after,
                                  # None when the distillation ran before a resume
                                  "teacher_target_variance": getattr(self, "teacher_target_variance_", None)}
        self.n_train_images_ = n
        self._warn_if_cut_short([
            ("distilled its teacher for", teacher_run, s["teacher_epochs"],
             self.training_summary_["teacher_stopped_by"] == "max_minutes"),
            ("trained its student for", len(student), s["epochs"], stopped == "max_minutes")])
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

    @torch.no_grad()
    def _targets(self, images: torch.Tensor) -> torch.Tensor:
        """The teacher's distillation targets for the four flips of ``images`` (row ``v * n + i``:
        view ``v`` of image ``i``, :func:`_flip_views`): the backbone's layers resampled to the
        PDN's map, concatenated, per-channel standardised over all of them; with
        ``teacher_channels``, projected on that many leading principal components of those
        standardised features. Sets ``teacher_target_variance_`` (the share of the variance the
        target keeps). The features are written batch by batch into one tensor and
        standardised in place: the batches' list, its concatenation and the standardised copy
        each held all of them before."""
        strided = self._settings["strided"]
        size = pdn_size(int(images.shape[-2]), strided), pdn_size(int(images.shape[-1]), strided)
        rows = len(_VIEWS) * len(images)
        t = torch.empty(0)
        for i in range(0, rows, 8):
            feats = self.feature_extractor(_flip_views(images, torch.arange(i, min(i + 8, rows))))
            block = torch.cat([F.interpolate(feats[layer], size=size, mode="bilinear", align_corners=False)
                               for layer in self.layers], dim=1)
            if i == 0:
                t = block.new_empty((rows, *block.shape[1:]))
            t[i : i + len(block)] = block
        mean = t.mean(dim=(0, 2, 3), keepdim=True)
        std = t.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
        t.sub_(mean).div_(std)
        self.teacher_target_variance_ = 1.0
        if self.channels < t.shape[1]:
            basis, kept = principal_axes(t, self.channels)
            t = torch.einsum("nchw,ck->nkhw", t, basis)
            self.teacher_target_variance_ = kept
        return t

    def _distillation_images(self, images: torch.Tensor) -> torch.Tensor:
        """At most ``teacher_images`` of the training images, a seeded choice in their order
        (all of them, as they are, when there are no more)."""
        cap = self._settings["teacher_images"]
        if len(images) <= cap:
            return images
        chosen = torch.randperm(len(images), generator=torch.Generator().manual_seed(self._seed() + 3))[:cap]
        return images[chosen.sort().values]

    def _distil(self, images: torch.Tensor, run: "_Training") -> None:
        """Train the teacher on (at most ``teacher_images`` of) the images and their flips, each
        flip made when its step needs it, for ``teacher_epochs`` or until its share of
        ``max_minutes`` is used; then set its output statistics on all the images."""
        s = self._settings
        if run.stage == "teacher":
            distil = self._distillation_images(images)
            targets = self._targets(distil)
            for epoch in range(run.epoch + 1, s["teacher_epochs"] + 1):
                t0 = time.perf_counter()
                self.teacher.train()
                order = torch.randperm(len(targets), generator=run.gen)
                loss = train_epoch(order, s["train_batch_size"],
                                   lambda chunk: (self.teacher(self._normalised(_flip_views(distil, chunk)))
                                                  - targets[chunk]).pow(2).mean(),
                                   run.optimisers["teacher"])
                self.teacher.eval()
                record = {"stage": "teacher", "epoch": epoch, "train_loss": loss,
                          "seconds": round(time.perf_counter() - t0, 3)}
                run.finished(record)
                # the teacher is distilled on all the images: nothing held out, its training loss decides
                left = self._seconds_left(run, s["teacher_time_share"])  # the distillation's share
                self._report({**record, "val_loss": record["train_loss"], "held_out": False, "best_epoch": epoch,
                              "seconds_left": left}, s["teacher_epochs"])
                if left is not None and left <= 0:
                    break
            run.begin_student()
        self.teacher.eval()
        self.teacher.requires_grad_(False)
        with torch.no_grad():
            t = torch.cat([self.teacher(self._normalised(images[i : i + 8])) for i in range(0, len(images), 8)])
            self.teacher_mean = t.mean(dim=(0, 2, 3), keepdim=True)
            self.teacher_std = t.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)

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
            # from the epoch alone, so a resumed fit drops it where an uninterrupted one does
            lr = s["learning_rate"] * (0.1 if epoch > s["lr_drop_at"] * s["epochs"] else 1.0)
            for group in run.optimisers["student"].param_groups:
                group["lr"] = lr
            self.student.train()
            self.autoencoder.train()
            order = train_idx[torch.randperm(len(train_idx), generator=run.gen)]
            train_loss = train_epoch(order, s["train_batch_size"],
                                     lambda chunk: self._losses(images[chunk], _augment(images[chunk], run.gen)),
                                     run.optimisers["student"])
            self.student.eval()
            self.autoencoder.eval()
            if len(val_idx):
                with torch.no_grad():
                    held = images[val_idx]
                    # a fixed augmentation of the held-out images: the same every epoch
                    val_loss = float(self._losses(held, _augment(held, torch.Generator().manual_seed(self._seed() + 7))))
            else:
                val_loss = train_loss
            record = {"stage": "student", "epoch": epoch, "learning_rate": lr, "train_loss": train_loss,
                      "val_loss": val_loss, "seconds": round(time.perf_counter() - t0, 3)}
            run.finished(record)
            self._report({**record, "best_epoch": run.best_epoch, "held_out": bool(len(val_idx)),
                          "seconds_left": self._seconds_left(run)}, s["epochs"])
            if epoch - run.best_epoch >= s["patience"]:
                return "early stopping"
            if self._out_of_time(run):
                return "max_minutes"
        return stopped

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


#: the views the teacher is distilled on: each image, flipped left-right, upside down, and both
_VIEWS = ((), (-1,), (-2,), (-1, -2))


def _flip_views(images: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Rows ``rows`` of the views of ``images`` (N, 3, H, W), row ``v * N + i`` the view ``v``
    (:data:`_VIEWS`) of image ``i``, without making the 4 N views."""
    n = len(images)
    return torch.stack([images[i].flip(_VIEWS[v]) for v, i in (divmod(int(r), n) for r in rows)])


class _Training(TrainingRun):
    """One EfficientAD training run: stage ("teacher" then "student"), the teacher's and the
    student/autoencoder's Adam, the best student epoch's student and autoencoder; the global
    generator (the autoencoder's dropout draws from it) saved and restored with the state."""

    def __init__(self, model: EfficientAD, n_images: int) -> None:
        s = model._settings
        teacher = adam(model.teacher.parameters(), lr=s["teacher_learning_rate"])
        student = adam(list(model.student.parameters()) + list(model.autoencoder.parameters()),
                       lr=s["learning_rate"], weight_decay=s["weight_decay"])
        modules = {"teacher": model.teacher, "student": model.student, "autoencoder": model.autoencoder}
        super().__init__(model, n_images, modules, {"teacher": teacher, "student": student},
                         kept=("student", "autoencoder"))
        self.stage = "teacher"

    def epoch_limit(self) -> int:
        s = self.model._settings
        return int(s["teacher_epochs"] if self.stage == "teacher" else s["epochs"])

    def stops_at_once(self) -> str | None:
        if self.stage == "teacher":  # the student trains at least one epoch after the teacher
            return None
        return super().stops_at_once()

    def begin_student(self) -> None:
        self.stage, self.epoch = "student", 0

    def improves(self, record: dict[str, Any]) -> bool:
        return record["stage"] == "student" and super().improves(record)

    def extra_state(self) -> dict[str, Any]:
        return {"stage": self.stage, "global_generator": torch.random.get_rng_state()}

    def restore_extra(self, state: dict[str, Any]) -> None:
        self.stage = state["stage"]
        torch.random.set_rng_state(state["global_generator"])


def _check_settings(width: Any, teacher_channels: Any, teacher_epochs: Any, teacher_lr: Any, hard_q: Any, q_a: Any,
                    q_b: Any) -> None:
    check_number("width", width, lambda v: v > 0, "> 0")
    if teacher_channels is not None:
        check_positive_int("teacher_channels", teacher_channels)
    check_positive_int("teacher_epochs", teacher_epochs)
    check_number("teacher_learning_rate", teacher_lr, lambda v: v > 0, "> 0")
    check_number("hard_quantile", hard_q, lambda v: 0 <= v < 1, "in [0, 1)")
    check_number("q_a", q_a, lambda v: 0 <= v < 1, "in [0, 1)")
    check_number("q_b", q_b, lambda v: 0 < v <= 1, "in (0, 1]")
    if isinstance(q_a, (int, float)) and isinstance(q_b, (int, float)) and not q_a < q_b:
        raise ConfigError(f"Expected q_a < q_b, got q_a={q_a!r}, q_b={q_b!r}")
