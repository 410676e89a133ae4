"""What every model shares: settings, the frozen feature extractor, the fit, checks.

One level of inheritance only. A model implements ``embed`` (fitting-time and scoring-time
features), ``_finish`` (turn the accumulated embeddings into fitted buffers) and ``forward``
(pure torch, exportable); ``_update`` keeps every batch unless a model overrides it.

The public contract that export and the pipeline rely on:

- ``fit(batches)``: ``batches`` is re-iterable (each pass yields the whole training set
  again), so a model that trains for several epochs overrides ``fit`` and iterates once per
  epoch, switching gradients on itself. The models here need one pass.
- ``fit_embeddings(embeddings)``: fit the head from batches of ``embed`` outputs computed
  elsewhere (the INT8 export passes the quantised backbone's embeddings).
- ``int8_head_refit`` (class attribute): True when the head is statistics of ``embed``
  features, so the INT8 export refits it on the quantised backbone's features; a model whose
  head is trained sets it False and gets the plain quantised graph.
- ``int8_max_stride`` and ``int8_head_fp32`` (class attributes): how much of the backbone the
  INT8 export quantises (up to that stride), and whether the floating-point head of the INT8
  artifact is stored in FP32 (the CPU's f32 GEMM) rather than FP16 (half the size).
"""

from __future__ import annotations

import hashlib
import numbers
import os
from abc import ABC, abstractmethod
from typing import Any, Callable, ClassVar, Iterable, Iterator, Sequence

import torch
import torch.nn.functional as F

from edgeanomaly.components import FeatureExtractor
from edgeanomaly.components import DynamicBufferModule
from edgeanomaly.errors import ConfigError, DatasetError, NotFittedError
from edgeanomaly.models._registry import checking_settings
from edgeanomaly.models._rowstore import RowStore

__all__ = ["AnomalyModel", "STRIDE_4_8_16_LAYERS", "concat_layers"]

#: Each backbone's layers at strides 4, 8 and 16: the default of the models that read three
#: levels of features (PaDiM, FastFlow).
STRIDE_4_8_16_LAYERS: dict[str, tuple[str, ...]] = {
    "resnet18": ("layer1", "layer2", "layer3"),
    "wide_resnet50_2": ("layer1", "layer2", "layer3"),
    "efficientnet_lite0": ("blocks.2", "blocks.4", "blocks.10"),
}

#: ``progress(stage, done, total)`` of the steps after the pass over the images.
StageProgress = Callable[[str, int, int], None]


def concat_layers(features: dict[str, torch.Tensor], layers: Sequence[str], mode: str) -> torch.Tensor:
    """Resize every layer's map to the first (shallowest) layer's size and concatenate channels.

    features: {layer: (N, C_l, h_l, w_l)} -> (N, sum C_l, h_0, w_0).
    """
    base = features[layers[0]]
    parts = [base]
    for name in layers[1:]:
        f = features[name]
        if mode == "bilinear":
            f = F.interpolate(f, size=base.shape[-2:], mode="bilinear", align_corners=False)
        else:
            f = F.interpolate(f, size=base.shape[-2:], mode="nearest")
        parts.append(f)
    return torch.cat(parts, dim=1)


class AnomalyModel(DynamicBufferModule, ABC):
    """Base of the registered models (settings, feature extractor, fit loop, fitted check).

    Subclasses set the class attributes ``name``, ``task`` (``"segmentation"`` or
    ``"classification"``), ``output_names`` and ``min_distinct_images`` (how many different
    training images their statistics need: a covariance across images needs two).
    """

    name: ClassVar[str] = ""
    task: ClassVar[str] = "segmentation"
    min_distinct_images: ClassVar[int] = 1
    output_names: ClassVar[tuple[str, ...]] = ("pred_score", "anomaly_map")
    default_layers: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: Settings added after checkpoints were first written, with the value those checkpoints
    #: were fitted with (their config does not name them); ``load_checkpoint`` applies them.
    unrecorded_settings: ClassVar[dict[str, Any]] = {}
    #: The head is fitted from ``embed`` features by ``fit_embeddings`` (see the module docstring).
    int8_head_refit: ClassVar[bool] = True
    #: The INT8 export quantises backbone layers up to this stride (deeper ones stay FP32).
    int8_max_stride: ClassVar[int] = 8
    #: Store the INT8 artifact's floating-point head (memory bank, covariances) in FP32: faster
    #: on CPUs, whose plugin runs an FP16-stored matrix product through a slower kernel.
    int8_head_fp32: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Each model's constructor checks the kinds of its settings against its annotations and
        refuses names it does not take (close names suggested), however it is called:
        ``create_model``, a recipe, ``--param`` or ``PatchCore(...)`` directly. ``bool("no")``
        is True, so a string for a flag would otherwise switch it on."""
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None:
            cls.__init__ = checking_settings(cls, init)  # type: ignore[method-assign]

    def __init__(
        self,
        backbone: str,
        layers: Sequence[str] | None,
        pretrained: bool,
        weights: str | os.PathLike[str] | None,
        cache_dir: str | os.PathLike[str] | None,
        random_state: int | None,
        settings: dict[str, Any],
    ) -> None:
        super().__init__()
        if random_state is not None and (isinstance(random_state, bool) or not isinstance(random_state, numbers.Integral)):
            raise ConfigError(f"Expected random_state as an int or None, got {random_state!r}")
        random_state = None if random_state is None else int(random_state)  # NumPy's integers too, saved as an int
        if isinstance(layers, str):
            layers = tuple(v.strip() for v in layers.split(",") if v.strip())
        if layers is None:
            layers = self.default_layers.get(backbone)
        self.feature_extractor = FeatureExtractor(
            backbone,
            layers,
            pretrained=pretrained,
            weights=weights,
            cache_dir=cache_dir,
            random_state=0 if random_state is None else random_state,
        )
        self.backbone = backbone
        self.layers: tuple[str, ...] = tuple(self.feature_extractor.layers)
        self.pretrained = bool(pretrained or weights is not None)
        self.random_state = random_state
        self.weights_source = self.feature_extractor.weights_source
        self._settings = dict(settings)
        self._rows = RowStore()
        self.n_train_images_ = 0

    # ----------------------------------------------------------------- configuration
    def get_config(self) -> dict[str, Any]:
        """JSON-serialisable settings that rebuild this model (without its fitted state)."""
        return {
            "model": self.name,
            "params": {
                "backbone": self.backbone,
                "layers": list(self.layers),
                "random_state": self.random_state,
                **self._settings,
            },
            "pretrained": self.pretrained,
            "weights_source": self.weights_source,
        }

    @property
    def max_stride(self) -> int:
        return max(self.feature_extractor.strides.values())

    def check_input_size(self, height: int, width: int) -> None:
        """Raise ConfigError unless (height, width) is divisible by the deepest layer's stride."""
        s = self.max_stride
        if height % s or width % s:
            ok_h, ok_w = s * max(1, round(height / s)), s * max(1, round(width / s))
            raise ConfigError(
                f"Expected an input size divisible by {s} (the stride of layer "
                f"{self.layers[-1]!r} of {self.backbone}), got {height}x{width}; try {ok_h}x{ok_w}."
            )

    # ----------------------------------------------------------------- fitting
    @abstractmethod
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Features used both to fit and to score: images (N, 3, H, W) -> the model's embedding."""

    def _update(self, embedding: torch.Tensor) -> None:
        """Accumulate one batch of embeddings during fit(); by default keep them all.

        Models whose statistics can be summed batch by batch (PaDiM) override this.
        """
        self._rows.append(embedding)

    def _take_rows(self) -> torch.Tensor:
        """Everything ``_update`` kept, concatenated along the batch; the buffer is emptied.

        The rows are kept in 64 MiB blocks (:class:`RowStore`), so joining them costs one
        block beyond the rows, not a second copy of them (issue 22)."""
        return self._rows.take()

    @abstractmethod
    def _finish(self) -> None:
        """Turn the accumulated state into the fitted buffers (called once, at the end of fit())."""

    @abstractmethod
    def _fitted_tensors(self) -> Sequence[torch.Tensor]:
        """The buffers that are empty until fit() (their emptiness means 'not fitted')."""

    @torch.no_grad()
    def fit(self, batches: Iterable[torch.Tensor], progress: StageProgress | None = None) -> "AnomalyModel":
        """One pass over batches of normal images: (N, 3, H, W) float32 RGB in [0, 1].

        Returns self. Fitting again starts from scratch. ``progress(stage, done, total)`` is
        called during the long steps after the pass (PatchCore: ``"coreset"``, in picks).

        Raises:
            DatasetError: fewer than ``min_distinct_images`` different images (identical, blank
                or duplicated files give singular statistics).
        """
        self.eval()
        distinct: set[bytes] = set()
        embeddings = (self.embed(batch) for batch in self._checked_images(batches, distinct))
        return self._fit_head(embeddings, lambda n: self._check_distinct(n, distinct), progress)

    def _checked_images(self, batches: Iterable[torch.Tensor], distinct: set[bytes]) -> Iterator[torch.Tensor]:
        """The training batches checked (shape, input size), float32 on the model's device; the
        first ``min_distinct_images`` distinct images are hashed into ``distinct`` on the way."""
        for batch in batches:
            if not isinstance(batch, torch.Tensor):
                batch = torch.as_tensor(batch)
            if batch.ndim != 4 or batch.shape[1] != 3:
                raise ValueError(f"Expected image batches of shape (N, 3, H, W), got {tuple(batch.shape)}")
            self.check_input_size(int(batch.shape[-2]), int(batch.shape[-1]))
            if len(distinct) < self.min_distinct_images:  # only until enough are seen: cheap
                # hashed on the host (a batch from the loader is there already)
                distinct.update(hashlib.blake2b(img.detach().float().cpu().contiguous().numpy().tobytes(),
                                                digest_size=16).digest() for img in batch)
            yield batch.to(device=self.device, dtype=torch.float32)

    def _check_distinct(self, n: int, distinct: set[bytes]) -> None:
        """DatasetError unless ``n`` images held ``min_distinct_images`` different ones."""
        if len(distinct) < self.min_distinct_images:
            raise DatasetError(
                f"{type(self).__name__} needs at least {self.min_distinct_images} distinct training images, "
                f"got {n} image{'s' * (n != 1)} of which {len(distinct)} distinct (identical, blank or "
                "duplicated files). Add more normal images of the part."
            )

    @torch.no_grad()
    def fit_embeddings(self, embeddings: Iterable[torch.Tensor], progress: StageProgress | None = None) -> "AnomalyModel":
        """Fit the head on batches of ``embed`` outputs (each with the batch first); returns self.

        ``fit`` computes them with the model's own backbone; the INT8 export passes those of
        the quantised backbone. Fitting again starts from scratch.
        """
        return self._fit_head(embeddings, None, progress)

    def _fit_head(self, embeddings: Iterable[torch.Tensor], check: Callable[[int], None] | None,
                  progress: StageProgress | None = None) -> "AnomalyModel":
        """``_reset``, ``_update`` per batch, ``check(n_images)`` before ``_finish``."""
        if not self.int8_head_refit:
            raise TypeError(f"{type(self).__name__} trains its head: it cannot be fitted from embeddings alone")
        self._reset()
        n = 0
        for embedding in embeddings:
            if not isinstance(embedding, torch.Tensor):
                embedding = torch.as_tensor(embedding)
            self._update(embedding)
            n += int(embedding.shape[0])
        if n == 0:
            raise ValueError(f"{type(self).__name__}.fit() received no images: expected at least one batch of normal images")
        if check is not None:
            check(n)
        self._progress = progress
        try:
            self._finish()
        finally:
            self._progress = None
        self.n_train_images_ = n
        return self

    def _report(self, stage: str, done: int, total: int) -> None:
        """Progress of a long step of ``_finish`` to the ``progress`` given to ``fit``."""
        if getattr(self, "_progress", None) is not None:
            self._progress(stage, done, total)

    def _reset(self) -> None:
        """Forget accumulated fitting state."""
        self._rows = RowStore()

    @property
    def device(self) -> torch.device:
        """Where the model's parameters are (``model.to(device)`` moves it; fit follows)."""
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")

    @property
    def is_fitted(self) -> bool:
        return all(t is not None and t.numel() > 0 for t in self._fitted_tensors())

    def check_is_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet: call fit() first.")

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run ``forward`` and name the outputs: {"pred_score": (N,), "anomaly_map": (N, 1, H, W)}."""
        self.check_is_fitted()
        out = self.forward(images)
        return dict(zip(self.output_names, out))
