"""PatchCore (Roth et al., "Towards Total Recall in Industrial Anomaly Detection", CVPR 2022).

Defaults follow the paper: mid-level layers (stride 8 and 16), 3x3 locally aware average
aggregation, a greedy k-center coreset of 10% of the training patches, nearest-neighbour
patch scores, and the paper's re-weighted image score with ``num_neighbors = 9``.

Where this differs from the common reference implementations (anomalib, the authors' code):
- The squared distances are computed as ``|x|^2 + (|m|^2 - 2 x.m)`` with ``|m|^2`` stored at
  fit time; ``|x|^2`` and the square root are applied to each patch's minimum only, and the
  nearest entry's index is looked up for the most anomalous patch only: the same numbers as
  a full ``cdist`` followed by ``min``, for a fraction of the work on the device.
- The ``num_neighbors`` nearest bank entries of every bank entry are found once at fit time
  (``support_idx_``), so the image score needs no second search over the bank at inference.
- ``max_bank_size`` caps the coreset (default 40,000 entries) so latency stays bounded when
  many training images are used; the paper has no cap.
- ``max_train_memory_mb`` bounds the training patches held for the coreset search (default
  4096 MB, about 2.8 million 384-dimensional patches). Beyond it every 2nd, then 4th, ...
  patch in fitting order is kept: a uniform, deterministic subsample from which the coreset
  is selected. The reference implementations hold every patch.
- ``coreset_method="chunked"`` (the default) runs the greedy k-center inside each part of a
  seeded random partition of the training patches into parts of at most
  ``coreset_chunk_rows`` (65,536: exactly the greedy up to 64 images of 256 px), so the
  selection costs time linear in the number of patches instead of patches x picks;
  ``"greedy"`` is the exact traversal of all patches (the reference implementations';
  checkpoints written before the option have it). docs/BENCHMARKS.md compares them.
"""

from __future__ import annotations

import os
from typing import Sequence

import torch
import torch.nn.functional as F

from edgeanomaly.components import CORESET_METHODS, GaussianBlur2d, KCenterGreedy
from edgeanomaly.errors import ConfigError
from edgeanomaly.models._base import AnomalyModel, concat_layers
from edgeanomaly.models._registry import register_model

__all__ = ["PatchCore"]

_SUPPORT_BLOCK_BYTES = 64 * 2**20
_PREDICT_BLOCK_BYTES = 256 * 2**20


@register_model
class PatchCore(AnomalyModel):
    """PatchCore: memory bank of nominal patch features, nearest-neighbour scoring.

    Args:
        backbone: backbone name (default ``efficientnet_lite0``).
        layers: feature layers; default: the backbone's stride-8 and stride-16 layers
            (``layer2, layer3`` for ResNets).
        coreset_ratio: fraction of training patches kept in the memory bank (0 < r <= 1).
        num_neighbors: bank neighbours used by the re-weighted image score (paper: 9).
        max_bank_size: upper bound on memory-bank entries after coreset selection.
        projection_eps: Johnson-Lindenstrauss ``eps`` of the random projection used by the
            coreset search (anomalib: 0.9).
        blur_sigma: sigma of the Gaussian blur applied to the upsampled anomaly map (paper: 4).
        max_train_memory_mb: memory budget for the training patches (see the module notes).
        coreset_method: ``"chunked"`` (linear time) or ``"greedy"`` (exact); see the module notes.
        coreset_chunk_rows: the largest part of the ``"chunked"`` selection.
        pretrained, weights, cache_dir: backbone weights (see ``create_backbone``).
        random_state: seeds the coreset start point (and random-init backbones).

    Fitted attributes: ``memory_bank_`` (M, D), ``bank_sq_norm_`` (M,), ``support_idx_``
    (M, k).

    forward(images (N, 3, H, W) in [0, 1]) -> (pred_score (N,), anomaly_map (N, 1, H, W)).
    """

    name = "patchcore"
    task = "segmentation"
    default_layers = {"resnet18": ("layer2", "layer3"), "wide_resnet50_2": ("layer2", "layer3")}
    # INT8 that pays on CPUs (issue 15): the whole backbone up to its deepest default layer
    # (stride 16) in INT8, and the memory-bank distances (half the graph time) kept on the
    # f32 GEMM. Measured on EfficientNet-Lite0 at 256 px: 0.90x of FP32 before, 1.17x after,
    # verdict PASS (docs/BENCHMARKS.md).
    int8_max_stride = 16
    int8_head_fp32 = True
    # Checkpoints from before the chunked selection were fitted with the exact greedy.
    unrecorded_settings = {"coreset_method": "greedy", "coreset_chunk_rows": 65_536}

    def __init__(
        self,
        backbone: str = "efficientnet_lite0",
        layers: Sequence[str] | None = None,
        coreset_ratio: float = 0.1,
        num_neighbors: int = 9,
        max_bank_size: int | None = 40_000,
        projection_eps: float = 0.9,
        blur_sigma: float = 4.0,
        max_train_memory_mb: float = 4096.0,
        coreset_method: str = "chunked",
        coreset_chunk_rows: int = 65_536,
        pretrained: bool = True,
        weights: str | os.PathLike[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        random_state: int | None = 0,
    ) -> None:
        if not 0 < float(coreset_ratio) <= 1:
            raise ConfigError(f"Expected coreset_ratio in (0, 1], got {coreset_ratio}")
        if int(num_neighbors) < 1:
            raise ConfigError(f"Expected num_neighbors >= 1, got {num_neighbors}")
        if max_bank_size is not None and int(max_bank_size) < 1:
            raise ConfigError(f"Expected max_bank_size >= 1 or None, got {max_bank_size}")
        if float(max_train_memory_mb) <= 0:
            raise ConfigError(f"Expected max_train_memory_mb > 0, got {max_train_memory_mb}")
        if coreset_method not in CORESET_METHODS:
            raise ConfigError(f"Expected coreset_method in {CORESET_METHODS}, got {coreset_method!r}")
        if isinstance(coreset_chunk_rows, bool) or not isinstance(coreset_chunk_rows, int) or coreset_chunk_rows < 1:
            raise ConfigError(f"Expected coreset_chunk_rows as a positive int, got {coreset_chunk_rows!r}")
        settings = {
            "coreset_ratio": float(coreset_ratio),
            "num_neighbors": int(num_neighbors),
            "max_bank_size": None if max_bank_size is None else int(max_bank_size),
            "projection_eps": float(projection_eps),
            "blur_sigma": float(blur_sigma),
            "max_train_memory_mb": float(max_train_memory_mb),
            "coreset_method": coreset_method,
            "coreset_chunk_rows": coreset_chunk_rows,
        }
        super().__init__(backbone, layers, pretrained, weights, cache_dir, random_state, settings)
        self.coreset_ratio = settings["coreset_ratio"]
        self.num_neighbors = settings["num_neighbors"]
        self.max_bank_size = settings["max_bank_size"]
        self.projection_eps = settings["projection_eps"]
        self.max_train_memory_mb = settings["max_train_memory_mb"]
        self.coreset_method = coreset_method
        self.coreset_chunk_rows = coreset_chunk_rows
        self.pool = torch.nn.AvgPool2d(3, stride=1, padding=1)
        self.blur = GaussianBlur2d(sigma=settings["blur_sigma"], channels=1)
        self.register_buffer("memory_bank_", torch.empty(0, 0))
        self.register_buffer("bank_sq_norm_", torch.empty(0))
        self.register_buffer("support_idx_", torch.empty(0, 0, dtype=torch.long))

    # ----------------------------------------------------------------- features
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> locally aware patch features (N, D, H / s, W / s), s = first layer stride."""
        feats = self.feature_extractor(images)
        feats = {k: self.pool(v) for k, v in feats.items()}
        return concat_layers(feats, self.layers, mode="bilinear")

    # ----------------------------------------------------------------- fitting
    def _reset(self) -> None:
        super()._reset()
        self._index: list[torch.Tensor] = []  # fitting-order index of every kept patch
        self._seen = 0
        self._stride = 1
        self._kept = 0

    def _update(self, embedding: torch.Tensor) -> None:
        d = embedding.shape[1]
        patches = embedding.permute(0, 2, 3, 1).reshape(-1, d)
        # The bookkeeping of which patches are kept stays on the host; only the rows are on
        # the model's device (no value comes back from it per batch).
        index = torch.arange(self._seen, self._seen + patches.shape[0])
        self._seen += patches.shape[0]
        keep = index % self._stride == 0
        self._rows.append(patches if self._stride == 1 else patches[keep.to(patches.device)])
        self._index.append(index[keep])
        self._kept += int(keep.sum())
        budget = int(self.max_train_memory_mb * 2**20 // (4 * d))
        while self._kept > budget:
            # Keep every 2nd of the kept patches (by fitting order): uniform over all images
            # seen so far, and the same rule for the images still to come.
            self._stride *= 2
            keeps = [i % self._stride == 0 for i in self._index]
            self._rows.keep(torch.cat(keeps))
            self._index = [i[k] for i, k in zip(self._index, keeps)]
            self._kept = sum(int(k.sum()) for k in keeps)

    def _finish(self) -> None:
        patches = self._take_rows()
        self._index = []
        n_keep = max(1, int(round(self.coreset_ratio * patches.shape[0])))
        if self.max_bank_size is not None:
            n_keep = min(n_keep, self.max_bank_size)
        if n_keep < patches.shape[0]:
            selector = KCenterGreedy(
                n_samples=n_keep, eps=self.projection_eps, random_state=self.random_state,
                method=self.coreset_method, chunk_rows=self.coreset_chunk_rows,
            ).fit(patches, progress=lambda done, total: self._report("coreset", done, total))
            bank = patches[selector.indices_].contiguous()
        else:
            bank = patches
        self.memory_bank_ = bank
        self.bank_sq_norm_ = (bank * bank).sum(dim=1)
        k = min(self.num_neighbors, bank.shape[0])
        # Neighbours of every bank entry, found once here instead of at every prediction.
        support = torch.empty(bank.shape[0], k, dtype=torch.long, device=bank.device)
        # Rows per block so one (rows, M) distance block is at most 64 MiB: at a bank of
        # 40,000 a fixed 4,096 rows took 655 MB per block, with temporaries 2 GB (issue 22).
        step = max(1, min(4096, _SUPPORT_BLOCK_BYTES // (4 * bank.shape[0])))
        for start in range(0, bank.shape[0], step):
            chunk = bank[start : start + step]
            # |c|^2 - 2 c.m + |m|^2 in place on one block: the same float operations (and so the
            # same neighbours) as the expression written out, without its temporaries.
            d2 = torch.mm(chunk, bank.T).mul_(-2.0).add_((chunk * chunk).sum(1, keepdim=True)).add_(self.bank_sq_norm_[None, :])
            support[start : start + step] = torch.topk(d2, k, dim=1, largest=False).indices
            del d2
        # Ties aside, an entry is its own nearest neighbour; make it so exactly.
        support[:, 0] = torch.arange(bank.shape[0], device=bank.device)
        self.support_idx_ = support

    def _fitted_tensors(self) -> Sequence[torch.Tensor]:
        return (self.memory_bank_, self.bank_sq_norm_, self.support_idx_)

    def predict_batch_limit(self, height: int, width: int) -> int:
        """Images per ``forward`` call that keep its (images, patches, bank) distance block
        within 256 MiB: at a bank of 40,000 and 256 px that is one image (a batch of 16 held
        2.6 GB). ``predict_samples`` splits its batches accordingly."""
        s = self.feature_extractor.strides[self.layers[0]]
        block = (height // s) * (width // s) * max(1, self.memory_bank_.shape[0]) * 4
        return max(1, _PREDICT_BLOCK_BYTES // max(1, block))

    # ----------------------------------------------------------------- scoring
    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.embed(images)
        n, d, h, w = emb.shape
        patches = emb.permute(0, 2, 3, 1).reshape(n, h * w, d)
        # |x - m|^2 = |x|^2 + (|m|^2 - 2 x.m): the bracket is one matrix product with a bias
        # (-2 * bank, transposed, (D, M): exact, and folded into the graph's only bank
        # constant on export); |x|^2 is the same along a row, so it is added after the
        # minimum instead of to all P x M entries.
        bank_t = (self.memory_bank_ * -2.0).T
        to_bank = torch.matmul(patches, bank_t) + self.bank_sq_norm_  # (n, P, M)
        x2 = (patches * patches).sum(-1)  # (n, P)
        patch_scores = (to_bank.amin(dim=-1) + x2).clamp_min(0.0).sqrt()

        # Re-weighted image score (paper eq. 7): the most anomalous patch, damped when its
        # nearest bank entry sits in a dense neighbourhood of the bank. Only that patch needs
        # the index of its nearest entry: an arg-min over one row, not over all P rows.
        max_score, max_pos = patch_scores.max(dim=1)  # (n,)
        row = torch.gather(to_bank, 1, max_pos.view(n, 1, 1).expand(n, 1, to_bank.shape[-1]))[:, 0]  # (n, M)
        nn_of_max = row.argmin(dim=-1)  # (n,)
        # Distances from that patch to its nearest entry's neighbours: the same |x|^2 + row
        # arithmetic as the patch scores, so no bank rows are gathered (one bank constant).
        x2_max = torch.gather(x2, 1, max_pos.view(n, 1))  # (n, 1)
        dist = (torch.gather(row, 1, self.support_idx_[nn_of_max]) + x2_max).clamp_min(0.0).sqrt()  # (n, k)
        weight = 1.0 - torch.softmax(dist, dim=1)[:, 0]
        pred_score = weight * max_score

        amap = patch_scores.view(n, 1, h, w)
        amap = F.interpolate(amap, size=images.shape[-2:], mode="bilinear", align_corners=False)
        amap = self.blur(amap)
        return pred_score, amap
