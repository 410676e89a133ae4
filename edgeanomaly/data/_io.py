"""Image and mask reading with OpenCV: one place that knows about bit depths and channels."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from edgeanomaly.data._convert import to_rgb_uint8
from edgeanomaly.errors import ImageReadError

__all__ = ["IMAGE_EXTENSIONS", "read_image", "read_mask", "is_image_file", "decode_image"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

# Magic numbers tell a truncated image from a file that never was one.
_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "png",
    b"\xff\xd8\xff": "jpeg",
    b"BM": "bmp",
    b"II*\x00": "tiff",
    b"MM\x00*": "tiff",
}


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """True when the file name has one of :data:`IMAGE_EXTENSIONS` (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def _sniff(data: bytes) -> str | None:
    for magic, kind in _SIGNATURES.items():
        if data.startswith(magic):
            return kind
    return None


def _read_bytes(path: Path, what: str) -> bytes:
    if not path.exists():
        raise ImageReadError(f"{what} file not found: {path}")
    if path.is_dir():
        raise ImageReadError(f"Expected an {what.lower()} file, got a directory: {path}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageReadError(f"Cannot read {what.lower()} file {path}: {exc}") from exc
    if not data:
        raise ImageReadError(f"{what} file is empty (0 bytes): {path}")
    return data


def _check_complete(data: bytes, kind: str | None, name: str) -> None:
    # libjpeg decodes a truncated JPEG into a grey-filled image with only a warning;
    # on a production line that would be scored as a (probably anomalous) real part.
    if kind == "jpeg":
        tail = data.rstrip(b"\x00\r\n ")
        if not tail.endswith(b"\xff\xd9"):
            raise ImageReadError(
                f"JPEG file is truncated (no end-of-image marker): {name}. "
                "Check that the camera software finished writing it."
            )


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes into RGB uint8 (H, W, 3); see :func:`read_image`."""
    kind = _sniff(data)
    _check_complete(data, kind, name)
    buf = np.frombuffer(data, dtype=np.uint8)
    flags = cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION
    try:
        img = cv2.imdecode(buf, flags)
    except cv2.error as exc:  # pragma: no cover - depends on codec build
        img = None
        detail = f" ({exc.msg.strip() if hasattr(exc, 'msg') else exc})"
    else:
        detail = ""
    if img is None:
        if kind is None:
            raise ImageReadError(
                f"Not an image file (expected PNG, JPEG, BMP or TIFF): {name}{detail}"
            )
        raise ImageReadError(f"{kind.upper()} file is corrupt or truncated and cannot be decoded: {name}{detail}")
    return _to_rgb_uint8(img, name)


def _to_rgb_uint8(img: np.ndarray, name: str) -> np.ndarray:
    # OpenCV decodes to BGR(A); the rules for depth, range and channels are data._convert's.
    return to_rgb_uint8(img, "BGR", name)


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3).

    Accepts PNG, JPEG, BMP and TIFF; 8- or 16-bit (16-bit is scaled to 8-bit); grayscale
    (replicated to 3 channels), RGBA (alpha dropped) and palette images (expanded). EXIF
    orientation is ignored on purpose: camera frames are used as the sensor wrote them.

    Raises:
        ImageReadError: missing, empty, truncated or non-image file (the message names it).

    >>> import tempfile, cv2, numpy as np, os
    >>> p = os.path.join(tempfile.mkdtemp(), "x.png")
    >>> _ = cv2.imwrite(p, np.zeros((4, 5), np.uint8))
    >>> read_image(p).shape
    (4, 5, 3)
    """
    path = Path(path)
    return decode_image(_read_bytes(path, "Image"), str(path))


def read_mask(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a ground-truth mask as bool (H, W): True marks defect pixels.

    Accepts 1-bit PNG, 8-bit 0/255 and 0/1 masks (gray or colour; a colour mask is defect
    wherever any channel is non-zero). A mask with more than two distinct values (a JPEG
    mask, a soft mask) is rejected rather than guessed at.
    """
    path = Path(path)
    data = _read_bytes(path, "Mask")
    kind = _sniff(data)
    _check_complete(data, kind, str(path))
    raw = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if raw is None:
        if kind is None:
            raise ImageReadError(f"Not an image file (expected a PNG/BMP/TIFF mask): {path}")
        raise ImageReadError(f"Mask file is corrupt or truncated and cannot be decoded: {path}")
    if raw.ndim == 3:
        raw = raw[:, :, :3].max(axis=2) if raw.shape[2] >= 3 else raw[:, :, 0]
    values = np.unique(raw)
    if values.size > 2 or (values.size == 2 and values[0] != 0):
        shown = ", ".join(str(v) for v in values[:6]) + (", ..." if values.size > 6 else "")
        raise ImageReadError(
            f"Expected a binary mask (0/255, 0/1 or 1-bit), got {values.size} distinct values "
            f"({shown}): {path}"
        )
    return raw > 0
