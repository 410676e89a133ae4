"""The one preprocessing implementation: fitting, export calibration and the runtime all call it.

RGB uint8 (H, W, 3) -> resize (+ optional center crop) -> float32 (3, h, w) in [0, 1].
Mean/std normalisation is *not* done here: it lives inside the exported graph, so a
device only has to feed pixels scaled to [0, 1].
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import cv2
import numpy as np

from edgeanomaly.errors import ConfigError

__all__ = ["PreprocessConfig", "preprocess", "preprocess_batch", "preprocess_mask", "resize_and_crop", "resize_image"]

_INTERPOLATIONS = {
    "nearest": cv2.INTER_NEAREST,
    "linear": cv2.INTER_LINEAR,
    "cubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
}
_ALLOWED = ("auto", *_INTERPOLATIONS)


def _pair(value: int | Sequence[int] | None, name: str) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, (int, np.integer)):
        pair = (int(value), int(value))
    else:
        seq = tuple(int(v) for v in value)
        if len(seq) != 2:
            raise ConfigError(f"Expected {name} as an int or (height, width), got {value!r}")
        pair = seq  # type: ignore[assignment]
    if pair[0] <= 0 or pair[1] <= 0:
        raise ConfigError(f"Expected positive {name}, got {value!r}")
    return pair


@dataclass(frozen=True)
class PreprocessConfig:
    """How an image becomes a model input; stored verbatim in every bundle.

    Attributes:
        image_size: (height, width) the image is resized to.
        center_crop: optional (height, width) cropped from the centre after resizing;
            the model input size is then ``center_crop``.
        interpolation: ``"auto"`` (area when shrinking, linear when enlarging: no aliasing on
            large camera frames), or one of ``nearest``, ``linear``, ``cubic``, ``area``.

    >>> cfg = PreprocessConfig(image_size=256)
    >>> cfg.input_size
    (256, 256)
    """

    image_size: tuple[int, int] = (256, 256)
    center_crop: tuple[int, int] | None = None
    interpolation: str = "auto"

    def __init__(
        self,
        image_size: int | Sequence[int] = 256,
        center_crop: int | Sequence[int] | None = None,
        interpolation: str = "auto",
    ) -> None:
        size = _pair(image_size, "image_size")
        crop = _pair(center_crop, "center_crop")
        if interpolation not in _ALLOWED:
            raise ConfigError(
                f"Expected interpolation in {', '.join(_ALLOWED)}, got {interpolation!r}"
            )
        if crop is not None and (crop[0] > size[0] or crop[1] > size[1]):  # type: ignore[index]
            raise ConfigError(
                f"Expected center_crop no larger than image_size {size}, got {crop}"
            )
        object.__setattr__(self, "image_size", size)
        object.__setattr__(self, "center_crop", crop)
        object.__setattr__(self, "interpolation", interpolation)

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the tensor the model receives."""
        return self.center_crop if self.center_crop is not None else self.image_size

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["image_size"] = list(self.image_size)
        d["center_crop"] = list(self.center_crop) if self.center_crop else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PreprocessConfig":
        unknown = set(d) - {"image_size", "center_crop", "interpolation"}
        if unknown:
            raise ConfigError(f"Unknown preprocessing keys {sorted(unknown)}")
        return cls(
            image_size=d.get("image_size", 256),
            center_crop=d.get("center_crop"),
            interpolation=d.get("interpolation", "auto"),
        )


def _check_image(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise TypeError(f"Expected image as a numpy array (H, W, 3) uint8 RGB, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"Expected image of shape (H, W, 3) RGB, got {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"Expected a non-empty image, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(
            f"Expected image of dtype uint8 (0..255), got {image.dtype}; read files with "
            "edgeanomaly.data.read_image, which converts 16-bit images"
        )
    return image


def resize_image(image: np.ndarray, size: tuple[int, int], interpolation: str = "auto") -> np.ndarray:
    """Resize an (H, W[, C]) array to ``size`` = (height, width) with the named interpolation."""
    h, w = image.shape[:2]
    if (h, w) == tuple(size):
        return image
    if interpolation == "auto":
        shrinking = size[0] * size[1] < h * w
        flag = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    else:
        flag = _INTERPOLATIONS[interpolation]
    return cv2.resize(image, (int(size[1]), int(size[0])), interpolation=flag)


def resize_and_crop(image: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """The geometric half of :func:`preprocess`: (H, W, C) -> (h, w, C), same dtype."""
    out = resize_image(image, config.image_size, config.interpolation)
    if config.center_crop is not None:
        ch, cw = config.center_crop
        top = (out.shape[0] - ch) // 2
        left = (out.shape[1] - cw) // 2
        out = out[top : top + ch, left : left + cw]
    return out


def preprocess(image: np.ndarray, config: PreprocessConfig | None = None) -> np.ndarray:
    """Turn one RGB uint8 image into a model input.

    Args:
        image: (H, W, 3) uint8, RGB.
        config: resize/crop settings; default 256x256, no crop.

    Returns:
        (3, h, w) float32 in [0, 1], C-contiguous, where (h, w) = ``config.input_size``.

    >>> x = preprocess(np.zeros((480, 640, 3), np.uint8), PreprocessConfig(256))
    >>> x.shape, x.dtype
    ((3, 256, 256), dtype('float32'))
    """
    config = config or PreprocessConfig()
    out = resize_and_crop(_check_image(image), config)
    # Scale in float32 with one multiply, the exact same op the runtime uses.
    chw = np.ascontiguousarray(out.transpose(2, 0, 1), dtype=np.float32)
    chw *= np.float32(1.0 / 255.0)
    return chw


def preprocess_batch(images: Sequence[np.ndarray], config: PreprocessConfig | None = None) -> np.ndarray:
    """Preprocess several images of any sizes into one (N, 3, h, w) float32 batch in [0, 1]."""
    config = config or PreprocessConfig()
    if len(images) == 0:
        raise ValueError("Expected at least one image, got an empty sequence")
    h, w = config.input_size
    batch = np.empty((len(images), 3, h, w), dtype=np.float32)
    for i, image in enumerate(images):
        batch[i] = preprocess(image, config)
    return batch


def preprocess_mask(mask: np.ndarray, config: PreprocessConfig | None = None) -> np.ndarray:
    """Bring a ground-truth mask through the image's geometry: bool (H, W) -> bool (h, w).

    Nearest-neighbour resize, then the same centre crop: a pixel is a defect pixel at model
    resolution exactly when the mask pixel it samples is.
    """
    config = config or PreprocessConfig()
    if mask.ndim != 2:
        raise ValueError(f"Expected a mask of shape (H, W), got {mask.shape}")
    nearest = PreprocessConfig(config.image_size, config.center_crop, "nearest")
    return resize_and_crop(mask.astype(np.uint8), nearest).astype(bool)
