"""The image-size limit holds for every format OpenCV decodes (issue 20, item 3).

Before, only PNG/JPEG/BMP/TIFF headers were read: a WebP, GIF, AVIF, JPEG 2000, PxM, PFM, HDR
or Sun raster image of any size was decoded (a 16000x16000 WebP took 3.3 GB). Now each of
those headers is read, checked against OpenCV's decoded shape (the oracle) on real files the
test writes, and a format whose size cannot be read is refused before decoding.
"""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeanomaly.data._io import decode_image, header_size
from edgeanomaly.errors import ImageReadError

RNG = np.random.default_rng(1)

# (extension, encode params, image shape, dtype): every format this OpenCV build writes.
FORMATS = [
    (".webp", [cv2.IMWRITE_WEBP_QUALITY, 80], (33, 65, 3), np.uint8),   # lossy: 'VP8 ' chunk
    (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101], (33, 65, 3), np.uint8),  # lossless: 'VP8L' chunk
    (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101], (33, 65, 4), np.uint8),  # with alpha
    (".gif", [], (33, 65, 3), np.uint8),
    (".avif", [], (33, 65, 3), np.uint8),
    (".jp2", [], (33, 65, 3), np.uint8),
    (".pbm", [], (33, 65), np.uint8),
    (".pgm", [], (33, 65), np.uint8),
    (".ppm", [], (33, 65, 3), np.uint8),
    (".pam", [], (33, 65, 3), np.uint8),
    (".pfm", [], (33, 65, 3), np.float32),
    (".hdr", [], (33, 65, 3), np.float32),
    (".ras", [], (33, 65, 3), np.uint8),
]


def _encode(ext: str, params: list[int], shape: tuple[int, ...], dtype: type) -> bytes:
    img = RNG.integers(0, 250, size=shape).astype(dtype)
    if dtype == np.float32:
        img = img / 250.0
    try:
        ok, buf = cv2.imencode(ext, img, params)
    except cv2.error:
        ok = False
    if not ok:
        pytest.skip(f"this OpenCV build does not write {ext}")
    return buf.tobytes()


@pytest.mark.parametrize(("ext", "params", "shape", "dtype"), FORMATS, ids=lambda v: str(v) if isinstance(v, str) else None)
def test_header_size_of_every_format_matches_the_decoded_image(ext, params, shape, dtype):
    data = _encode(ext, params, shape, dtype)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded is not None, ext
    assert header_size(data) == (decoded.shape[1], decoded.shape[0]), ext


@pytest.mark.parametrize(("ext", "params", "shape", "dtype"), FORMATS, ids=lambda v: str(v) if isinstance(v, str) else None)
def test_pixel_limit_holds_for_every_format(ext, params, shape, dtype):
    """A real file one pixel over the limit is refused from its header; at the limit it decodes."""
    data = _encode(ext, params, shape, dtype)
    h, w = shape[:2]
    with pytest.raises(ImageReadError, match=rf"{w}x{h} pixels.*limit"):
        decode_image(data, f"x{ext}", max_pixels=w * h - 1)
    assert decode_image(data, f"x{ext}", max_pixels=w * h).shape == (h, w, 3)


def _riff(chunk: bytes, payload: bytes) -> bytes:
    body = b"WEBP" + chunk + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _bombs() -> dict[str, bytes]:
    """Hand-made headers that announce 16000x16000 (256 MP) or more, with next to no data."""
    w = h = 16000
    vp8x = _riff(b"VP8X", bytes([0x10, 0, 0, 0]) + (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little"))
    vp8l = _riff(b"VP8L", b"\x2f" + struct.pack("<I", (16000 - 1) | ((16000 - 1) << 14)) + bytes(64))
    vp8 = _riff(b"VP8 ", b"\x50\x02\x00" + b"\x9d\x01\x2a" + struct.pack("<HH", 16000, 16000) + bytes(64))
    gif = b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\x00\x00\x00" + b"\x2c" + struct.pack("<HHHH", 0, 0, 65535, 65535) + b"\x00\x02\x02\x44\x01\x00\x3b"
    siz = b"\xff\x4f\xff\x51" + struct.pack(">HHIIIIIIIIH", 47, 0, w, h, 0, 0, w, h, 0, 0, 3) + bytes(9)
    jp2 = (b"\x00\x00\x00\x0cjP  \r\n\x87\n" + b"\x00\x00\x00\x14ftypjp2 \x00\x00\x00\x00jp2 "
           + b"\x00\x00\x00\x2djp2h" + b"\x00\x00\x00\x16ihdr" + struct.pack(">IIHBBBB", h, w, 3, 7, 7, 0, 0) + bytes(15))
    ispe = struct.pack(">I", 20) + b"ispe" + bytes(4) + struct.pack(">II", w, h)
    avif = struct.pack(">I", 32) + b"ftypavif" + bytes(4) + b"avifmif1miafMA1B" + struct.pack(">I", 8 + 12 + 8 + 8 + len(ispe)) + b"meta" + bytes(4) \
        + struct.pack(">I", 8 + 8 + len(ispe)) + b"iprp" + struct.pack(">I", 8 + len(ispe)) + b"ipco" + ispe
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 2) + struct.pack("<HHII", 256, 4, 1, w) + struct.pack("<HHII", 257, 4, 1, h) + bytes(4)
    bigtiff = b"II+\x00" + struct.pack("<HHQ", 8, 0, 16) + struct.pack("<Q", 2) \
        + struct.pack("<HHQQ", 256, 16, 1, w) + struct.pack("<HHQQ", 257, 16, 1, h) + bytes(8)
    return {
        "webp VP8X": vp8x, "webp VP8L": vp8l, "webp VP8": vp8, "gif": gif, "jpeg2000 codestream": siz, "jp2": jp2,
        "avif": avif, "bigtiff": bigtiff, "tiff": tiff,
        "pbm": b"P4\n# comment\n16000 16000\n" + bytes(64), "pgm": b"P5 16000\n16000 255\n" + bytes(64),
        "ppm": b"P6\n16000 16000\n255\n" + bytes(64), "pam": b"P7\nWIDTH 16000\nHEIGHT 16000\nDEPTH 3\nMAXVAL 255\nTUPLTYPE RGB\nENDHDR\n" + bytes(64),
        "pfm": b"PF\n16000 16000\n-1\n" + bytes(64), "hdr": b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 16000 +X 16000\n" + bytes(64),
        "sun raster": struct.pack(">IIIIIIII", 0x59A66A95, w, h, 24, 3 * w * h, 1, 0, 0) + bytes(64),
    }


@pytest.mark.parametrize("kind", sorted(_bombs()))
def test_header_bombs_of_every_format_are_refused_before_decoding(kind):
    data = _bombs()[kind]
    w, h = header_size(data)
    assert w * h >= 16000 * 16000, kind
    with pytest.raises(ImageReadError, match=rf"{w}x{h} pixels .*more than the limit of 250 megapixels"):
        decode_image(data, kind)


_CHILD = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
sys.path.insert(0, sys.argv[1])
from edgeanomaly.data._io import decode_image
from edgeanomaly.errors import ImageReadError
data = open(sys.argv[2], 'rb').read()
try:
    decode_image(data, 'bomb')
except ImageReadError as exc:
    print('refused:', exc)
"""


def test_a_webp_bomb_is_refused_in_a_memory_capped_process(tmp_path):
    """The issue's case: a 16000x16000 WebP header; the process is capped at 2 GiB of address space."""
    bomb = tmp_path / "bomb.webp"
    bomb.write_bytes(_bombs()["webp VP8X"])
    root = str(Path(__file__).resolve().parents[2])
    proc = subprocess.run([sys.executable, "-c", _CHILD, root, str(bomb)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "refused: Image is 16000x16000 pixels" in proc.stdout, proc.stdout + proc.stderr[-2000:]


@pytest.mark.parametrize("data", [b"RIFF\x10\x00\x00\x00WEBPVP8X\x02\x00", b"GIF89a\x01", b"P6\n16000", b"\x00\x00\x00\x0cjP  \r\n\x87\n",
                                  b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\xff\xd9"])
def test_a_known_format_whose_size_cannot_be_read_is_refused(data):
    with pytest.raises(ImageReadError, match="size"):
        decode_image(data, "cut")


def test_unknown_bytes_are_not_an_image():
    with pytest.raises(ImageReadError, match="Not an image file"):
        decode_image(b"hello world, this is text", "x.txt")



_CHILD_OOM = """
import resource, sys
resource.setrlimit(resource.RLIMIT_DATA, (600 << 20, 600 << 20))
sys.path.insert(0, sys.argv[1])
from edgeanomaly.data._io import decode_image
from edgeanomaly.errors import ImageReadError
data = open(sys.argv[2], 'rb').read()
try:
    decode_image(data, 'big.png', max_pixels=10**9)
except ImageReadError as exc:
    print('refused:', type(exc.__cause__).__name__, exc)
"""


def test_running_out_of_memory_while_decoding_is_not_called_a_corrupt_file(tmp_path):
    """The issue's server said "PNG corrupt" when decoding failed for want of memory. Under a
    600 MB cap, a 20000x20000 PNG (1.2 GB decoded) allowed by max_pixels: the error says memory."""
    import struct as st
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return st.pack(">I", len(data)) + kind + data + st.pack(">I", zlib.crc32(kind + data))

    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", st.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0))
                    + chunk(b"IDAT", zlib.compress(bytes(1000))) + chunk(b"IEND", b""))
    root = str(Path(__file__).resolve().parents[2])
    proc = subprocess.run([sys.executable, "-c", _CHILD_OOM, root, str(big)], capture_output=True, text=True, timeout=120)
    assert "refused: MemoryError Not enough memory to decode" in proc.stdout and "20000x20000" in proc.stdout, proc.stdout + proc.stderr[-2000:]
    assert "corrupt" not in proc.stdout
