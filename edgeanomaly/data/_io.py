"""Image and mask reading with OpenCV: one place that knows about bit depths and channels."""

from __future__ import annotations

import hashlib

import os
import re
import struct
import sys
import tempfile
import threading
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from edgeanomaly._validation import env_limit
from edgeanomaly.data._convert import to_rgb_uint8
from edgeanomaly.errors import ConfigError, ImageReadError

__all__ = ["IMAGE_EXTENSIONS", "MAX_IMAGE_PIXELS", "read_image", "read_mask", "is_image_file", "decode_image", "header_size", "max_image_pixels"]

#: File names read as images: every still-image format OpenCV decodes (a ``.webp`` or ``.gif``
#: given to ``predict`` is an image, not a video; a folder's ``.webp`` files are not skipped).
#: GIF: the first frame. Float formats (HDR, PFM) must hold values in [0, 1].
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".jpe", ".bmp", ".dib", ".tif", ".tiff", ".webp", ".gif", ".avif",
                    ".jp2", ".pbm", ".pgm", ".ppm", ".pnm", ".sr", ".ras", ".hdr", ".pic", ".pfm", ".exr")

# Magic numbers tell a truncated image from a file that never was one. Every format this
# OpenCV build decodes is here (cv2.getBuildInformation(): PNG, JPEG, BMP, TIFF, WebP, GIF,
# AVIF, JPEG 2000, PxM, PFM, Radiance HDR, Sun raster); each has a header reader below, so the
# pixel limit holds whatever the format. Bytes of any other kind are not decoded at all.
_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "png",
    b"\xff\xd8\xff": "jpeg",
    b"BM": "bmp",
    b"II*\x00": "tiff",
    b"MM\x00*": "tiff",
    b"II+\x00": "bigtiff",
    b"MM\x00+": "bigtiff",
    b"GIF87a": "gif",
    b"GIF89a": "gif",
    b"\x00\x00\x00\x0cjP  \r\n\x87\n": "jp2",
    b"\xff\x4f\xff\x51": "j2k",
    b"#?RADIANCE": "hdr",
    b"#?RGBE": "hdr",
    b"\x59\xa6\x6a\x95": "sunraster",
}
#: Formats named in messages.
_FORMAT_NAMES = "PNG, JPEG, BMP, TIFF, WebP, GIF, AVIF, JPEG 2000, PBM/PGM/PPM/PAM, PFM, HDR or Sun raster"


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """True when the file name has one of :data:`IMAGE_EXTENSIONS` (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def _sniff(data: bytes) -> str | None:
    for magic, kind in _SIGNATURES.items():
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[4:8] == b"ftyp":  # ISO base media file (AVIF; OpenCV decodes no other kind)
        return "avif"
    if len(data) > 2 and data[0:1] == b"P" and data[2:3].isspace():
        if data[1:2] in b"1234567":
            return "pnm"
        if data[1:2] in (b"F", b"f"):
            return "pfm"
    return None


def _read_bytes(path: Path, what: str) -> bytes:
    if not path.exists():
        gone = f" (a link to {os.readlink(path)}, which is missing)" if path.is_symlink() else ""
        raise ImageReadError(f"{what} file not found: {path}{gone}")
    if path.is_dir():
        raise ImageReadError(f"Expected an {what.lower()} file, got a directory: {path}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageReadError(f"Cannot read {what.lower()} file {path}: {exc}") from exc
    if not data:
        raise ImageReadError(f"{what} file is empty (0 bytes): {path}")
    return data


#: Default largest image accepted, in pixels (width x height): 250 megapixels, about 750 MB
#: as 8-bit RGB. Override per call (``max_pixels=``) or with $EDGEANOMALY_MAX_IMAGE_PIXELS.
MAX_IMAGE_PIXELS = 250_000_000

# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic...): they carry the size.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
# Markers without a length field.
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xDA)}
# libjpeg reports damaged entropy-coded data only as a warning on stderr, then fills the
# rest of the image with grey: these are treated as errors.
_JPEG_CORRUPTION = ("Corrupt JPEG data", "Premature end of JPEG file")


def max_image_pixels() -> int:
    """The pixel limit in force: ``$EDGEANOMALY_MAX_IMAGE_PIXELS`` if set, else :data:`MAX_IMAGE_PIXELS`."""
    return env_limit("EDGEANOMALY_MAX_IMAGE_PIXELS", MAX_IMAGE_PIXELS, int, 1, ConfigError)


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    n = len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _JPEG_STANDALONE:
            i += 2
            continue
        if marker in _JPEG_SOF and i + 9 <= n:
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        if marker == 0xDA:  # start of scan before any frame header: malformed
            return None
        i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
    return None


def _ifd_size(data: bytes, big: bool) -> tuple[int, int] | None:
    """ImageWidth and ImageLength (tags 256, 257) from the first IFD of a TIFF or a BigTIFF
    (8-byte offsets and counts, 20-byte entries whose value field holds 8 bytes)."""
    order = "<" if data[:2] == b"II" else ">"
    offset, count_fmt, entry_size, value_at = ("Q", "Q", 20, 12) if big else ("I", "H", 12, 8)
    types = {3: "H", 4: "I", 16: "Q"} if big else {3: "H", 4: "I"}  # SHORT, LONG (, LONG8)
    try:
        (ifd,) = struct.unpack(order + offset, data[8:16] if big else data[4:8])
        head = struct.calcsize(count_fmt)
        (count,) = struct.unpack(order + count_fmt, data[ifd : ifd + head])
        found: dict[int, int] = {}
        for k in range(min(count, 4096)):
            entry = data[ifd + head + entry_size * k : ifd + head + entry_size * (k + 1)]
            tag, kind = struct.unpack(order + "HH", entry[:4])
            if tag in (256, 257):
                fmt = types.get(kind)
                if fmt is None:
                    return None
                found[tag] = struct.unpack(order + fmt, entry[value_at : value_at + struct.calcsize(fmt)])[0]
    except struct.error:
        return None
    return (found[256], found[257]) if len(found) == 2 else None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk, payload = data[12:16], data[20:30]
    if chunk == b"VP8X" and len(payload) >= 10:  # extended: the canvas size, 24 bits each, minus one
        return int.from_bytes(payload[4:7], "little") + 1, int.from_bytes(payload[7:10], "little") + 1
    if chunk == b"VP8L" and len(payload) >= 5 and payload[0] == 0x2F:  # lossless: 14 bits each, minus one
        (bits,) = struct.unpack("<I", payload[1:5])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and len(payload) >= 10 and payload[3:6] == b"\x9d\x01\x2a":  # lossy key frame
        w, h = struct.unpack("<HH", payload[6:10])
        return w & 0x3FFF, h & 0x3FFF
    return None


def _gif_size(data: bytes) -> tuple[int, int] | None:
    """The logical screen, grown to hold the first frame (a frame may lie outside it)."""
    width, height = struct.unpack("<HH", data[6:10])
    flags = data[10]
    i = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    while i < len(data):
        block = data[i]
        if block == 0x2C:  # image descriptor
            left, top, w, h = struct.unpack("<HHHH", data[i + 1 : i + 9])
            return max(width, left + w), max(height, top + h)
        if block != 0x21:  # only extensions may come before the first frame
            return None
        i += 2
        while i < len(data) and data[i]:  # sub-blocks up to the zero-length terminator
            i += data[i] + 1
        i += 1
    return None


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """ISO base media / JP2 boxes in ``data[start:end]``: ``[(type, content start, content end)]``."""
    out = []
    while start + 8 <= end:
        (size,) = struct.unpack(">I", data[start : start + 4])
        kind, head = data[start + 4 : start + 8], 8
        if size == 1:
            (size,) = struct.unpack(">Q", data[start + 8 : start + 16])
            head = 16
        elif size == 0:
            size = end - start
        if size < head:
            break
        out.append((kind, start + head, min(start + size, end)))
        start += size
    return out


def _j2k_size(data: bytes, at: int = 0) -> tuple[int, int] | None:
    """A JPEG 2000 codestream's SIZ segment (right after SOC): image area minus its offset."""
    if data[at : at + 4] != b"\xff\x4f\xff\x51":
        return None
    xsiz, ysiz, xo, yo = struct.unpack(">IIII", data[at + 8 : at + 24])
    return max(xsiz - xo, 0), max(ysiz - yo, 0)


def _jp2_size(data: bytes) -> tuple[int, int] | None:
    """JP2: the ``ihdr`` box, and the codestream's own SIZ when it is there (the larger counts)."""
    sizes = []
    for kind, a, b in _boxes(data, 0, len(data)):
        if kind == b"jp2h":
            for sub, c, _ in _boxes(data, a, b):
                if sub == b"ihdr":
                    height, width = struct.unpack(">II", data[c : c + 8])
                    sizes.append((width, height))
        elif kind == b"jp2c":
            siz = _j2k_size(data, a)
            if siz is not None:
                sizes.append(siz)
    if not sizes:
        return None
    return max(w for w, _ in sizes), max(h for _, h in sizes)


def _avif_size(data: bytes) -> tuple[int, int] | None:
    """AVIF: the largest ``ispe`` (image spatial extents) of the items in ``meta/iprp/ipco``."""
    sizes = []
    for kind, a, b in _boxes(data, 0, len(data)):
        if kind != b"meta":
            continue
        for iprp, c, d in _boxes(data, a + 4, b):  # meta is a full box: 4 bytes of version and flags
            if iprp != b"iprp":
                continue
            for ipco, e, f in _boxes(data, c, d):
                if ipco == b"ipco":
                    sizes += [struct.unpack(">II", data[g + 4 : g + 12]) for prop, g, _ in _boxes(data, e, f) if prop == b"ispe"]
    if not sizes:
        return None
    return max(w for w, _ in sizes), max(h for _, h in sizes)


def _text_tokens(data: bytes, limit: int = 4096) -> list[bytes]:
    """Whitespace-separated tokens of a PxM/PFM text header, ``#`` comments dropped."""
    lines = data[:limit].split(b"\n")
    return [t for line in lines for t in line.split(b"#", 1)[0].split()]


_PNM_HEADER = re.compile(rb"P[1-6Ff]\s+(?:#[^\n]*\n\s*)*(\d+)\s+(?:#[^\n]*\n\s*)*(\d+)\s")


def _pnm_size(data: bytes) -> tuple[int, int] | None:
    if data[1:2] == b"7":  # PAM: WIDTH and HEIGHT lines before ENDHDR
        found: dict[bytes, int] = {}
        tokens = _text_tokens(data)
        for key, value in zip(tokens, tokens[1:]):
            if key == b"ENDHDR":
                break
            if key in (b"WIDTH", b"HEIGHT") and value.isdigit():
                found[key] = int(value)
        return (found[b"WIDTH"], found[b"HEIGHT"]) if len(found) == 2 else None
    # P1-P6 and PF/Pf: magic, width, height (comments between), each ended by whitespace; a
    # number cut short by the end of the data does not count.
    found = _PNM_HEADER.match(data[:4096])
    return (int(found[1]), int(found[2])) if found else None


def _hdr_size(data: bytes) -> tuple[int, int] | None:
    """Radiance HDR: header lines up to an empty line, then e.g. ``-Y 480 +X 640``."""
    end = data.find(b"\n\n", 0, 1 << 16)
    if end < 0:
        return None
    line = data[end + 2 : end + 2 + 64].split(b"\n", 1)[0].split()
    if len(line) != 4 or not (line[1].isdigit() and line[3].isdigit()):
        return None
    axes = {line[0][-1:]: int(line[1]), line[2][-1:]: int(line[3])}
    return (axes[b"X"], axes[b"Y"]) if set(axes) == {b"X", b"Y"} else None


def header_size(data: bytes) -> tuple[int, int] | None:
    r"""``(width, height)`` from the header of image bytes of any format OpenCV decodes here,
    without decoding (PNG, JPEG, BMP, TIFF/BigTIFF, WebP, GIF, AVIF, JPEG 2000, PxM, PFM, HDR,
    Sun raster).

    ``None`` when the bytes are of no known format or their header cannot be read;
    :func:`decode_image` then refuses them without decoding.

    >>> header_size(b"\x89PNG\r\n\x1a\n" + bytes(4) + b"IHDR" + bytes.fromhex("0000000500000003"))
    (5, 3)
    """
    reader = _SIZE_READERS.get(_sniff(data) or "")
    try:
        return reader(data) if reader is not None else None
    except (struct.error, IndexError):
        return None


def _png_size(data: bytes) -> tuple[int, int] | None:
    return struct.unpack(">II", data[16:24]) if data[12:16] == b"IHDR" else None


def _bmp_size(data: bytes) -> tuple[int, int]:
    (header,) = struct.unpack("<I", data[14:18])
    if header == 12:  # BITMAPCOREHEADER: 16-bit sizes
        return struct.unpack("<HH", data[18:22])
    width, height = struct.unpack("<ii", data[18:26])
    return abs(width), abs(height)  # a negative height means top-down rows


#: format (what ``_sniff`` says) -> ``bytes -> (width, height) or None``
_SIZE_READERS: dict[str, Callable[[bytes], tuple[int, int] | None]] = {
    "png": _png_size,
    "jpeg": _jpeg_size,
    "bmp": _bmp_size,
    "tiff": lambda data: _ifd_size(data, big=False),
    "bigtiff": lambda data: _ifd_size(data, big=True),
    "webp": _webp_size,
    "gif": _gif_size,
    "avif": _avif_size,
    "jp2": _jp2_size,
    "j2k": _j2k_size,
    "pnm": _pnm_size,
    "pfm": _pnm_size,
    "hdr": _hdr_size,
    "sunraster": lambda data: struct.unpack(">II", data[4:12]),
}


def _check_pixels(data: bytes, name: str, max_pixels: int | None) -> None:
    """Refuse, before decoding, bytes of no known format, a header without a size, and an image
    over the pixel limit: nothing reaches a decoder whose output size is not known and allowed."""
    limit = max_image_pixels() if max_pixels is None else int(max_pixels)
    kind = _sniff(data)
    if kind is None:
        raise ImageReadError(f"Not an image file (expected {_FORMAT_NAMES}): {name}")
    size = header_size(data)
    if size is None:
        raise ImageReadError(
            f"{kind.upper()} file is truncated or damaged: its header does not give the image size, "
            f"so it is not decoded: {name}"
        )
    if size[0] * size[1] > limit:
        w, h = size
        raise ImageReadError(
            f"Image is {w}x{h} pixels ({w * h / 1e6:.1f} megapixels), more than the limit of "
            f"{limit / 1e6:g} megapixels; refusing to decode it (it would need about "
            f"{3 * w * h / 2**30:.1f} GiB). Set $EDGEANOMALY_MAX_IMAGE_PIXELS (or max_pixels=) to allow "
            f"larger images: {name}"
        )


def _check_complete(data: bytes, kind: str | None, name: str) -> None:
    # libjpeg decodes a truncated JPEG into a grey-filled image with only a warning;
    # on a production line that would be scored as a (probably anomalous) real part.
    # Bytes after the end-of-image marker (camera trailers) are ignored by libjpeg and fine.
    if kind == "jpeg" and b"\xff\xd9" not in data:
        raise ImageReadError(
            f"JPEG file is truncated (no end-of-image marker): {name}. "
            "Check that the camera software finished writing it."
        )


def _check_png_chunks(data: bytes, name: str) -> None:
    """Walk a PNG's chunk headers up to IEND, without decompressing or checksumming anything.

    libpng prints "libpng error: ..." on the C-level stderr before OpenCV returns None, beside
    the clean per-file error. A truncated PNG (the usual damage: a camera still writing it)
    is caught here instead, silently, and the message says so. The walk reads 8 bytes per
    chunk; CRCs are left to libpng (checking them here cost 10-15% of a decode), so damage
    inside a complete file still reaches libpng, which then prints its line.
    """
    pos, n = 8, len(data)
    while True:
        if pos + 12 > n:
            raise ImageReadError(f"PNG file is truncated ({n} bytes, it ends before its IEND chunk): {name}. "
                                 "Check that the camera software finished writing it.")
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 12 + length
        if end > n:
            raise ImageReadError(
                f"PNG file is truncated ({n} bytes; its {ctype.decode('latin-1')!r} chunk needs {end}): {name}. "
                "Check that the camera software finished writing it."
            )
        if ctype == b"IEND":
            return
        pos = end


_STDERR_LOCK = threading.Lock()


def _imdecode_jpeg(buf: np.ndarray, flags: int, name: str) -> np.ndarray | None:
    """``cv2.imdecode`` of a JPEG, with libjpeg's corruption warnings turned into errors.

    libjpeg prints them on the C-level stderr and OpenCV does not expose them, so fd 2 is
    redirected into a temporary file for the duration of the decode (one decode at a time;
    anything else printed meanwhile is written back to stderr, not lost).
    """
    with _STDERR_LOCK, tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(sink.fileno(), 2)
            try:
                img = cv2.imdecode(buf, flags)
            finally:
                os.dup2(saved, 2)
        finally:
            os.close(saved)
        sink.seek(0)
        printed = sink.read().decode("utf-8", errors="replace")
    if not printed:
        return img
    lines = printed.splitlines()
    corrupt = [line.strip() for line in lines if line.startswith(_JPEG_CORRUPTION)]
    others = [line for line in lines if not line.startswith(_JPEG_CORRUPTION)]
    if others:
        os.write(2, ("\n".join(others) + "\n").encode("utf-8", errors="replace"))
    if corrupt:
        raise ImageReadError(
            f"JPEG file is corrupt ({'; '.join(corrupt)}); the decoder would fill the damaged part "
            f"with grey: {name}. Check the camera's transfer or re-save the file."
        )
    return img


def decode_image(data: bytes, name: str = "<bytes>", *, max_pixels: int | None = None) -> np.ndarray:
    """Decode encoded image bytes into RGB uint8 (H, W, 3); see :func:`read_image`.

    ``max_pixels``: refuse images larger than this (default :func:`max_image_pixels`),
    checked on the header before anything is decoded.
    """
    kind = _sniff(data)
    _check_complete(data, kind, name)
    _check_pixels(data, name, max_pixels)
    if kind == "png":
        _check_png_chunks(data, name)
    buf = np.frombuffer(data, dtype=np.uint8)
    flags = cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION
    try:
        img = _imdecode_jpeg(buf, flags, name) if kind == "jpeg" else cv2.imdecode(buf, flags)
    except cv2.error as exc:  # pragma: no cover - depends on codec build
        img = None
        detail = f" ({exc.msg.strip() if hasattr(exc, 'msg') else exc})"
        if "Insufficient memory" in str(exc) or "Failed to allocate" in str(exc):
            w, h = header_size(data) or (0, 0)
            raise ImageReadError(
                f"Not enough memory to decode {name}: {w}x{h} pixels need about {3 * w * h / 2**30:.1f} GiB "
                "(the file is not known to be damaged). Free memory, or lower $EDGEANOMALY_MAX_IMAGE_PIXELS "
                "to refuse such images up front"
            ) from MemoryError(str(exc))
    else:
        detail = ""
    if img is None:
        if kind is None:
            raise ImageReadError(f"Not an image file (expected {_FORMAT_NAMES}): {name}{detail}")
        raise ImageReadError(f"{kind.upper()} file is corrupt or truncated and cannot be decoded: {name}{detail}")
    return _to_rgb_uint8(img, name)


def _to_rgb_uint8(img: np.ndarray, name: str) -> np.ndarray:
    # OpenCV decodes to BGR(A); the rules for depth, range and channels are data._convert's.
    return to_rgb_uint8(img, "BGR", name)


def read_image(path: str | os.PathLike[str], *, max_pixels: int | None = None) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3).

    Accepts every still-image format OpenCV decodes (:data:`IMAGE_EXTENSIONS`: PNG, JPEG, BMP,
    TIFF, WebP, GIF's first frame, AVIF, JPEG 2000, PNM...); 8- or 16-bit (16-bit is scaled to 8-bit); grayscale
    (replicated to 3 channels), RGBA (alpha dropped) and palette images (expanded). EXIF
    orientation is ignored on purpose: camera frames are used as the sensor wrote them.

    Images larger than ``max_pixels`` (default :func:`max_image_pixels`, 250 megapixels,
    or ``$EDGEANOMALY_MAX_IMAGE_PIXELS``) are refused from their header, before decoding.

    Raises:
        ImageReadError: missing, empty, truncated, corrupt, too large or non-image file (the
            message names it).

    >>> import tempfile, cv2, numpy as np, os
    >>> p = os.path.join(tempfile.mkdtemp(), "x.png")
    >>> _ = cv2.imwrite(p, np.zeros((4, 5), np.uint8))
    >>> read_image(p).shape
    (4, 5, 3)
    """
    path = Path(path)
    return decode_image(_read_bytes(path, "Image"), str(path), max_pixels=max_pixels)


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
    _check_pixels(data, str(path), None)
    if kind == "png":
        _check_png_chunks(data, str(path))
    buf = np.frombuffer(data, np.uint8)
    raw = _imdecode_jpeg(buf, cv2.IMREAD_UNCHANGED, str(path)) if kind == "jpeg" else cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
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


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes: how training images are recognised (a re-encoded copy is not)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
