"""FastFlow (Yu et al., "FastFlow: Unsupervised Anomaly Detection and Localization via 2D
Normalizing Flows", 2021): a 2-D normalizing flow per feature level of a frozen backbone.

Each level's feature map is layer-normalised (over channels and positions, no learned
affine, so one model runs at any input size it was fitted at) and mapped by a stack of
:class:`~edgeanomaly.components.AffineCouplingBlock` (``flow_steps``, subnets alternating 3x3
and 1x1 convolutions) to ``z``, trained to be standard normal by maximum likelihood:
``loss = mean over images of sum over levels of (0.5 * |z|^2 - log|det J|)``, Adam.

Anomaly map: per level the likelihood ``exp(-0.5 * mean_c z^2)`` of each position, upsampled
to the input size and averaged over levels; the map is ``1 - that mean`` (0 for a perfectly
normal position, towards 1 for an unlikely one: anomalib's ``-mean``, shifted by 1 so the
map is non-negative; the ranking is the same). Image score: the map's maximum (anomalib's), or
with ``score_top_fraction`` the mean of that share of the map's highest values (MSFlow's image
score, Zhou et al. 2023, which takes the top 10%): one bright speck of a few pixels then no
longer decides the image (docs/BENCHMARKS.md, "FastFlow on hazelnut").

Training: the backbone is frozen, so its features are computed once and the flows train on
them for ``epochs`` (the decode and the backbone run once, not once per epoch). A seeded
``validation_fraction`` of the normal images is held out; after each epoch its loss is
measured, the best epoch's weights are kept, and training stops after ``patience`` epochs
without improvement or after ``max_minutes``. ``training_history_`` records every epoch.
With ``augment`` the flows also train on other views of each training image. ``"shifts"``
moves it right and down on a ``shift_grid`` x ``shift_grid`` grid of offsets within the finest
level's stride (the default 2: by half that stride, right, down and both, 4 views; 3: by a third
and two thirds of it, 9 views): on any line a part a few pixels off lands between the backbone's
feature positions, and its features change more than the part did. ``"flips"`` (4 views) and
``"dihedral"`` (all 8 rotations and flips of the square) are for parts whose orientation on the
line is not a defect (a nut, a bottle seen from above; not a transistor's leads or a metal nut's
flipped side). The held-out images are drawn
before the views are made, so no image has views on both sides; inference is unchanged.
"""

from __future__ import annotations

import time
from typing import Any, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edgeanomaly.components import fastflow_blocks
from edgeanomaly.errors import ConfigError
from edgeanomaly.models._base import STRIDE_4_8_16_LAYERS
from edgeanomaly.models._registry import register_model
from edgeanomaly.models._trained import TrainedModel, TrainingRun, adam, check_number, check_positive_int, train_epoch

__all__ = ["FastFlow"]

#: Views of each training image per ``augment`` setting other than ``"shifts"`` (``shift_grid ** 2``).
_FLIP_VIEWS = {"none": 1, "flips": 4, "dihedral": 8}
#: The ``augment`` settings.
_AUGMENTS = (*_FLIP_VIEWS, "shifts")


@register_model
class FastFlow(TrainedModel):
    """FastFlow: normalizing flows over a frozen backbone's feature maps, trained for epochs.

    Args:
        backbone, layers: default ``layer1..layer3`` (ResNets) or ``blocks.2, blocks.4,
            blocks.10`` (EfficientNet-Lite0): strides 4, 8 and 16.
        flow_steps: coupling blocks per level (paper: 8 for ResNet-18).
        hidden_ratio: subnet width / input channels (paper: 1.0 for ResNet-18).
        conv3x3_only: all subnets 3x3 (paper: alternate 3x3 and 1x1 for ResNet-18).
        clamp: soft clamping of the coupling's log-scale.
        score_top_fraction: the image score is the mean of this share of the anomaly map's
            highest values (at least one value); 0: the map's maximum, as anomalib's FastFlow.
        augment: ``"none"``, ``"shifts"`` (train also on each image moved right and down by
            fractions of the finest level's stride, the edge mirrored in: ``shift_grid ** 2``
            views), ``"flips"``
            (flipped left-right, upside down and both: 4 views) or ``"dihedral"`` (all 8
            rotations by 90 degrees and flips; square images only); the last two for parts
            whose orientation is not a defect. Training takes
            about as many times longer, and the features held in memory as many times more,
            as there are views (0.28 MB a view at 256 px with ``blocks.4, blocks.10``).
        shift_grid: with ``augment="shifts"``, the offsets per direction: each image is moved
            by ``(i * step, j * step)`` pixels for ``i, j < shift_grid``, ``step`` the finest
            level's stride divided by ``shift_grid`` and rounded (down where rounding up would
            move it a whole stride). 2 (the default): 0 and 4 px at stride 8, 4 views; 3: 0, 3
            and 6 px, 9 views. From 2 to that stride.
        **options: keywords of every trained model (:class:`~edgeanomaly.models.TrainedModel`):
            ``pretrained``, ``weights``, ``cache_dir``, ``random_state`` (seeds the flows'
            initial weights, the split and the shuffling) and the training loop's settings
            (:class:`~edgeanomaly.models.TrainingSettings`: ``epochs``, ``learning_rate``,
            ``weight_decay``, ``train_batch_size``, ``validation_fraction``, ``patience``,
            ``max_minutes``); FastFlow keeps their defaults (Adam's learning rate and weight
            decay as the paper's: 1e-3, 1e-5; 8 images per step).
    """

    name = "fastflow"
    task = "segmentation"
    default_layers = STRIDE_4_8_16_LAYERS

    def __init__(
        self,
        backbone: str = "efficientnet_lite0",
        layers: Sequence[str] | None = None,
        flow_steps: int = 8,
        hidden_ratio: float = 1.0,
        conv3x3_only: bool = False,
        clamp: float = 2.0,
        score_top_fraction: float = 0.0,
        augment: str = "none",
        shift_grid: int = 2,
        **options: Any,
    ) -> None:
        check_positive_int("flow_steps", flow_steps)
        check_number("score_top_fraction", score_top_fraction, lambda v: 0 <= v <= 1, "in [0, 1] (0: the map's maximum)")
        check_positive_int("shift_grid", shift_grid)
        if not isinstance(augment, str) or augment not in _AUGMENTS:
            raise ConfigError(f"Expected augment as one of {', '.join(map(repr, _AUGMENTS))}, got {augment!r}")
        settings = {"flow_steps": int(flow_steps), "hidden_ratio": float(hidden_ratio), "conv3x3_only": bool(conv3x3_only),
                    "clamp": float(clamp), "score_top_fraction": float(score_top_fraction), "augment": augment,
                    "shift_grid": shift_grid}
        super().__init__(backbone, layers, settings, **options)
        if augment != "shifts" and shift_grid != 2:
            raise ConfigError(f"shift_grid={shift_grid} applies to augment='shifts' only; got augment={augment!r}")
        if augment == "shifts" and not 2 <= shift_grid <= self._finest_stride():
            raise ConfigError(f"Expected shift_grid as an integer from 2 to {self._finest_stride()} (the finest level's "
                              f"stride: offsets of at least one pixel within it), got {shift_grid!r}")
        seed = self._seed()
        self.flows = nn.ModuleList(
            fastflow_blocks(self.feature_extractor.channels[layer], steps=int(flow_steps), conv3x3_only=bool(conv3x3_only),
                            hidden_ratio=float(hidden_ratio), clamp=float(clamp), random_state=seed + i)
            for i, layer in enumerate(self.layers)
        )
        # 1 once trained: the flows have no "empty until fitted" statistics of their own.
        self.register_buffer("trained", torch.zeros(0))

    # ----------------------------------------------------------------- features
    def embed(self, images: torch.Tensor) -> list[torch.Tensor]:  # type: ignore[override]
        """(N, 3, H, W) -> one layer-normalised map per level, (N, C_l, H / s_l, W / s_l)."""
        feats = self.feature_extractor(images)
        return [_layer_norm(feats[layer]) for layer in self.layers]

    def _level_terms(self, features: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [flow(f) for flow, f in zip(self.flows, features)]

    # ----------------------------------------------------------------- training
    def fit(self, batches: Iterable[torch.Tensor]) -> "FastFlow":  # type: ignore[override]
        """Train the flows on batches of normal images (N, 3, H, W) float32 RGB in [0, 1].

        The backbone runs once over ``batches``; the flows then train for up to ``epochs``.
        Returns self; fitting again starts from scratch (fresh flows, same seed), unless
        ``resume_training`` is set and ``training_state_path`` holds the state an interrupted
        fit of the same settings on the same images saved after its last whole epoch (the stopping
        rules ``epochs``, ``patience`` and ``max_minutes`` may differ): training then goes on
        from there and ends as an uninterrupted fit with these settings would have.
        """
        features = self._extract(batches)
        views = self._views_per_image()
        n = features[0].shape[0] // views
        self._reinitialise()
        train_images, val_images = self._split(n)
        train_idx, val_idx = _view_rows(train_images, n, views), _view_rows(val_images, n, views)
        run = _training(self, n)
        if self.resume_training:
            run.restore()
        stopped = "epochs"
        epochs = range(run.epoch + 1, self._settings["epochs"] + 1)
        if run.epoch and run.epoch - run.best_epoch >= self._settings["patience"]:  # interrupted as it stopped
            stopped, epochs = "early stopping", range(0)
        for epoch in epochs:
            t0 = time.perf_counter()
            train_loss = self._train_epoch(features, train_idx, run.optimisers["optimiser"], run.gen)
            val_loss = self._loss(features, val_idx) if len(val_idx) else train_loss
            record = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                      "seconds": round(time.perf_counter() - t0, 3)}
            run.finished(record)
            self._report({**record, "best_epoch": run.best_epoch, "held_out": bool(len(val_idx)),
                          "seconds_left": self._seconds_left(run)}, self._settings["epochs"])
            if epoch - run.best_epoch >= self._settings["patience"]:
                stopped = "early stopping"
                break
            if self._out_of_time(run):
                stopped = "max_minutes"
                break
        self.flows.load_state_dict(run.best["flows"])
        for record in run.history:
            record["best"] = record["epoch"] == run.best_epoch
        self.training_history_ = run.history
        self.training_summary_ = {"epochs_run": len(run.history), "best_epoch": run.best_epoch, "best_val_loss": run.best_loss,
                                  "stopped_by": stopped, "n_train": len(train_images), "n_validation": len(val_images),
                                  "views_per_image": views,
                                  "seconds": round(run.seconds(), 3), "resumed_after_epoch": run.resumed_after}
        self.trained = torch.ones(1, device=self.trained.device)
        self.n_train_images_ = n
        self.eval()
        self._warn_if_cut_short([("trained", len(run.history), self._settings["epochs"], stopped == "max_minutes")])
        return self

    @torch.no_grad()
    def _extract(self, batches: Iterable[torch.Tensor]) -> list[torch.Tensor]:
        """Each level's features of every view of every image, view by view: row ``v * n + i``
        is view ``v`` of image ``i`` (view 0 the image itself)."""
        self.eval()
        augment, offsets = self._settings["augment"], self._view_offsets()
        levels = [[_Rows() for _ in range(self._views_per_image())] for _ in self.layers]
        distinct: set[bytes] = set()
        n = 0
        for batch in self._checked_images(batches, distinct):
            if augment == "dihedral" and batch.shape[-2] != batch.shape[-1]:
                raise ValueError(f"augment='dihedral' turns images by 90 degrees, so they must be square; got "
                                 f"{batch.shape[-2]} x {batch.shape[-1]} (use augment='flips', or a square image size)")
            for v, view in enumerate(_image_views(batch, augment, offsets)):
                for store, f in zip(levels, self.embed(view)):
                    store[v].append(f)
            n += int(batch.shape[0])
        if n == 0:
            raise ValueError("FastFlow.fit() received no images: expected at least one batch of normal images")
        self._check_distinct(n, distinct)
        return [_concatenated(store) for store in levels]

    def _views_per_image(self) -> int:
        augment = self._settings["augment"]
        return self._settings["shift_grid"] ** 2 if augment == "shifts" else _FLIP_VIEWS[augment]

    def _finest_stride(self) -> int:
        return min(self.feature_extractor.strides[layer] for layer in self.layers)

    def _view_offsets(self) -> list[tuple[int, int]]:
        """What ``augment="shifts"`` moves an image by (:func:`shift_offsets`)."""
        return shift_offsets(self._finest_stride(), self._settings["shift_grid"])

    def _reinitialise(self) -> None:
        fresh = [fastflow_blocks(flow.blocks[0].channels, steps=len(flow.blocks), conv3x3_only=self._settings["conv3x3_only"],
                                 hidden_ratio=self._settings["hidden_ratio"], clamp=self._settings["clamp"],
                                 random_state=self._seed() + i)
                 for i, flow in enumerate(self.flows)]
        self.flows.load_state_dict(nn.ModuleList(fresh).state_dict())

    def _objective(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Sum over images and levels of 0.5 |z|^2 - log|det J| (the negative log-likelihood
        up to a constant)."""
        total = features[0].new_zeros(())
        for z, log_jac_det in self._level_terms(features):
            total = total + (0.5 * z.pow(2).sum(dim=(1, 2, 3)) - log_jac_det).sum()
        return total

    def _train_epoch(self, features: list[torch.Tensor], idx: torch.Tensor, optimiser: torch.optim.Optimizer,
                     gen: torch.Generator) -> float:
        self.flows.train()
        order = idx[torch.randperm(len(idx), generator=gen)]
        loss = train_epoch(order, self._settings["train_batch_size"],
                           lambda chunk: self._objective([f[chunk] for f in features]) / len(chunk), optimiser)
        self.flows.eval()
        return loss

    @torch.no_grad()
    def _loss(self, features: list[torch.Tensor], idx: torch.Tensor) -> float:
        return float(self._objective([f[idx] for f in features])) / len(idx)

    def _fitted_tensors(self) -> Sequence[torch.Tensor]:
        return (self.trained,)

    # ----------------------------------------------------------------- scoring
    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        likelihood = None
        for z, _ in self._level_terms(self.embed(images)):
            level = torch.exp(-0.5 * z.pow(2).mean(dim=1, keepdim=True))
            level = F.interpolate(level, size=images.shape[-2:], mode="bilinear", align_corners=False)
            likelihood = level if likelihood is None else likelihood + level
        amap = 1.0 - likelihood / len(self.flows)
        return self._image_score(amap), amap

    def _image_score(self, amap: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) -> (N,): the map's maximum, or the mean of its ``score_top_fraction``
        highest values (a fixed count at a given input size: one TopK node on export)."""
        fraction = self._settings["score_top_fraction"]
        if fraction == 0:
            return amap.amax(dim=(1, 2, 3))
        flat = amap.flatten(1)
        k = max(1, int(fraction * amap.shape[-2] * amap.shape[-1]))
        return flat.topk(k, dim=1).values.mean(dim=1)


def shift_offsets(stride: int, grid: int) -> list[tuple[int, int]]:
    """The (rows down, columns right) pixels ``augment="shifts"`` moves an image by, (0, 0)
    first, row by row: a ``grid`` x ``grid`` grid of steps of ``stride / grid`` pixels (the
    finest level's stride; rounded, down where rounding up would reach a whole stride)."""
    step = max(1, round(stride / grid))
    if (grid - 1) * step >= stride:
        step = stride // grid
    return [(i * step, j * step) for i in range(grid) for j in range(grid)]


def _image_views(images: torch.Tensor, augment: str, offsets: Sequence[tuple[int, int]]) -> list[torch.Tensor]:
    """The views of (N, C, H, W) images that ``augment`` trains on, the images themselves first
    (``offsets``: the (rows down, columns right) ``"shifts"`` moves them by, (0, 0) first)."""
    if augment == "none":
        return [images]
    if augment == "shifts":
        return [images if (dy, dx) == (0, 0) else _moved(images, dy, dx) for dy, dx in offsets]
    views = [images, images.flip(-1), images.flip(-2), images.flip(-2, -1)]
    if augment == "dihedral":
        turned = images.transpose(-2, -1)
        views += [turned, turned.flip(-1), turned.flip(-2), turned.flip(-2, -1)]
    return views


def _moved(images: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """(N, C, H, W) images moved ``dy`` rows down and ``dx`` columns right, the rows and columns
    that come in mirrored from the top and left edges (``F.pad``'s ``"reflect"``)."""
    h, w = images.shape[-2:]
    return F.pad(images, (dx, 0, dy, 0), mode="reflect")[..., :h, :w]


#: Bytes of each block that :class:`_Rows` keeps features in: above glibc's largest automatic
#: mmap threshold (32 MiB), so the blocks are mapped apart from the heap.
_BLOCK_BYTES = 64 << 20


class _Rows:
    """Rows of one level's features of one view, appended a batch at a time into blocks of
    :data:`_BLOCK_BYTES`. Kept per batch (a few MB each, between the backbone's temporaries on
    the heap), 9 views of 1,000 images held 7.4 GB where their features are 2.4 GB: freed
    temporaries could not be reused around the kept rows, and the heap grew with every batch."""

    def __init__(self) -> None:
        self.blocks: list[torch.Tensor] = []
        self.used = 0  # rows filled in the last block
        self.rows = 0

    def append(self, f: torch.Tensor) -> None:
        at = 0
        while at < f.shape[0]:
            if not self.blocks or self.used == self.blocks[-1].shape[0]:
                # whole blocks even for a few rows: on a CPU the pages not written cost nothing (a
                # GPU allocates them: 64 MiB a level and view); blocks grown from small ones sat
                # on the heap again (200 images: 1.76 GB peak, against 1.29 with whole blocks)
                capacity = max(1, _BLOCK_BYTES // max(1, f[0].numel() * f.element_size()))
                self.blocks.append(f.new_empty((capacity, *f.shape[1:])))
                self.used = 0
            take = min(f.shape[0] - at, self.blocks[-1].shape[0] - self.used)
            self.blocks[-1][self.used : self.used + take] = f[at : at + take]
            self.used, at, self.rows = self.used + take, at + take, self.rows + take

    def drain_into(self, out: torch.Tensor, at: int) -> int:
        """Copy the rows into ``out`` from row ``at``, letting each block go once copied; the next row."""
        while self.blocks:
            block = self.blocks.pop(0)
            n = self.used if not self.blocks else block.shape[0]
            out[at : at + n] = block[:n]
            at += n
        return at


def _concatenated(views: list[_Rows]) -> torch.Tensor:
    """One level's rows, view by view, as one tensor (the blocks let go as they are copied)."""
    first = next(v.blocks[0] for v in views if v.blocks)
    out = first.new_empty((sum(v.rows for v in views), *first.shape[1:]))
    at = 0
    for view in views:
        at = view.drain_into(out, at)
    return out


def _view_rows(images: torch.Tensor, n: int, views: int) -> torch.Tensor:
    """The feature rows of every view of the image indices ``images`` (of ``n``), view by view."""
    return (torch.arange(views)[:, None] * n + images[None, :]).flatten()


def _training(model: FastFlow, n_images: int) -> TrainingRun:
    """One FastFlow training run: the flows and their Adam, the best epoch's flows kept."""
    optimiser = adam(model.flows.parameters(), lr=model._settings["learning_rate"], weight_decay=model._settings["weight_decay"])
    return TrainingRun(model, n_images, {"flows": model.flows}, {"optimiser": optimiser}, kept=("flows",))


def _layer_norm(f: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``F.layer_norm(f, f.shape[1:])`` without affine, written out: the ONNX exporter needs a
    constant ``normalized_shape``, which a dynamic batch does not give it."""
    mean = f.mean(dim=(1, 2, 3), keepdim=True)
    var = (f - mean).pow(2).mean(dim=(1, 2, 3), keepdim=True)
    return (f - mean) / torch.sqrt(var + eps)
