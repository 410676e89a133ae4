"""One bundle behind the server: V2 tensors in, calibrated predictions out (no kserve here).

Inputs (one per request):
    ``image``        FP32 ``[N, 3, H, W]``: the graph contract's tensor, already preprocessed.
    ``image_bytes``  BYTES ``[N]``: encoded image files (PNG, JPEG, WebP, ...: every format
                     ``edgeanomaly.data.decode_image`` sizes from its header), decoded and preprocessed
                     here with the project's one preprocessing path (the Detector's).
A request of one image, alone on the server, runs like ``Detector.predict`` (the
latency-compiled model, every core on that image). While other requests are in flight it runs
on the Detector's throughput model instead (``predict(..., throughput=True)``: one image per
core, several at once, the model ``predict_many`` switches to), so concurrent one-image
requests are batched by running together rather than one after another. A request of several
images takes the throughput path itself (``predict_many`` / ``predict_tensor``). Either way the
execution precision is the one the Detector verified (docs/BENCHMARKS.md, issue 15).

Outputs: ``pred_score`` (normalised, threshold 0.5), ``raw_score``, ``pred_label`` by default;
on request ``anomaly_map`` / ``pred_mask`` (at the original image size, or the input size for
tensors) and ``raw_anomaly_map`` (the graph's output, what the ``remote`` backend uses).

Memory (README.md, "Serve at scale"): before anything is decoded, the image headers give each image's
size; a request whose images add up to more than ``max_pixels`` (``--max-request-mp``), or
whose answer would be larger than ``max_response_bytes`` (``--max-response-mb``: anomaly maps
of large images), is refused with 413. Decoding, scoring and encoding the answer hold that many
pixels of a :class:`PixelBudget` shared by every request of the server, so all requests
together never have more than ``max_pixels`` decoded at once: the others wait their turn.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any, Callable, Iterator

import numpy as np

from edgeanomaly.data import decode_image, header_size, max_image_pixels
from edgeanomaly.errors import EdgeAnomalyError, ImageReadError
from edgeanomaly.runtime import load
from edgeanomaly.serve._protocol import BadRequest

__all__ = ["ServedBundle", "PixelBudget", "DEFAULT_OUTPUTS", "MAX_REQUEST_PIXELS", "MAX_RESPONSE_BYTES", "memory_bound"]

DEFAULT_OUTPUTS = ("pred_score", "raw_score", "pred_label")
_MAP_OUTPUTS = ("anomaly_map", "pred_mask", "raw_anomaly_map")
#: Default decoded pixels per request, and in flight on the whole server (``--max-request-mp``).
MAX_REQUEST_PIXELS = 64_000_000
#: Default largest answer, estimated before scoring (``--max-response-mb``).
MAX_RESPONSE_BYTES = 64 << 20
# Bytes per element of a map output in the answer: (binary, JSON). JSON floats are written
# as Python reprs ("0.123456789012345, "), booleans as "false, ".
_ELEMENT_BYTES = {"anomaly_map": (4, 24), "pred_mask": (1, 7), "raw_anomaly_map": (4, 24)}


#: Peak resident bytes per pixel of the pixel budget: decoded image, its RGB copy, the
#: full-size map and mask (measured 8-25 B by format: benchmarks/bench_serve_pixel_cost.py).
BYTES_PER_PIXEL = 32


def memory_bound(rss_after_warmup: int, max_request_pixels: float, max_request_bytes: float, max_response_bytes: float,
                 clients: int) -> int:
    """The server's resident memory bound in bytes (README, "Serve at scale"): memory after
    warm-up, the pixel budget at :data:`BYTES_PER_PIXEL`, and per client in flight three times
    its body (the body, what is decoded from it, a transient) and three times its answer.

    >>> memory_bound(0, 1e6, 1 << 20, 1 << 20, 1) == 32_000_000 + 6 * (1 << 20)
    True
    """
    return int(rss_after_warmup + BYTES_PER_PIXEL * max_request_pixels + clients * 3 * (max_request_bytes + max_response_bytes))


class PixelBudget:
    """Pixels decoded at once across the requests of a server, at most ``capacity``.

    A request holds its pixels while its images are decoded, scored and its answer encoded;
    one that does not fit waits until others are done (a request never holds more than
    ``capacity``, so it always gets its turn).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = int(capacity)
        self.used = 0
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        pixels = min(int(pixels), self.capacity)
        with self._cond:
            self._cond.wait_for(lambda: self.used + pixels <= self.capacity)
            self.used += pixels
        try:
            yield
        finally:
            with self._cond:
                self.used -= pixels
                self._cond.notify_all()


class ServedBundle:
    """A bundle loaded for serving.

    Args:
        bundle: bundle directory or ``.zip``.
        name: model name on the server.
        backend, device, precision, artifact, exact, trust: as :func:`edgeanomaly.runtime.load`.
        max_batch: most images accepted in one request.
        max_pixels: most decoded pixels in one request (images' width x height, summed).
        max_response_bytes: largest answer, estimated before scoring.
        budget: the server's :class:`PixelBudget` (default: one of ``max_pixels`` for this model).
    """

    def __init__(self, bundle: str | os.PathLike[str], name: str, *, backend: str = "auto", device: str = "CPU",
                 precision: str = "fp32", artifact: str | None = None, max_batch: int = 64, exact: bool = False,
                 max_pixels: int = MAX_REQUEST_PIXELS, max_response_bytes: int = MAX_RESPONSE_BYTES,
                 budget: PixelBudget | None = None, trust: Any = None) -> None:
        self.bundle, self.name = bundle, name
        self._load_args = {"backend": backend, "device": device, "precision": precision, "artifact": artifact, "exact": exact,
                           "trust": trust}
        self.max_batch = max_batch
        self.max_pixels, self.max_response_bytes = int(max_pixels), int(max_response_bytes)
        self.budget = budget if budget is not None else PixelBudget(self.max_pixels)
        self.detector: Any = None
        self._in_flight = 0  # requests being scored now (infer), to send concurrent ones to the throughput model
        self._count_lock = threading.Lock()
        #: Images scored on the throughput model because other requests were in flight.
        self.concurrent_images = 0

    def load(self) -> None:
        """Load the bundle and run one warm-up image, so the first request is not slow."""
        # A server runs for long: pay the bounded backend timing once for the faster backend.
        self.detector = load(self.bundle, measure_backends=True, **self._load_args)
        h, w = self.detector.input_size
        self.detector.predict(np.zeros((h, w, 3), np.uint8))

    @property
    def output_names(self) -> list[str]:
        names = list(DEFAULT_OUTPUTS)
        if self.detector is not None and self.detector.task == "segmentation":
            names += list(_MAP_OUTPUTS)
        return names

    def metadata(self) -> dict[str, Any]:
        """V2 model metadata, with the bundle's ``model_info`` and what runs it in ``parameters``."""
        det = self.detector
        h, w = det.input_size
        outputs = [
            {"name": "pred_score", "datatype": "FP32", "shape": [-1]},
            {"name": "raw_score", "datatype": "FP32", "shape": [-1]},
            {"name": "pred_label", "datatype": "BOOL", "shape": [-1]},
        ]
        if det.task == "segmentation":
            outputs += [
                {"name": "anomaly_map", "datatype": "FP32", "shape": [-1, 1, -1, -1]},
                {"name": "pred_mask", "datatype": "BOOL", "shape": [-1, 1, -1, -1]},
                {"name": "raw_anomaly_map", "datatype": "FP32", "shape": [-1, 1, h, w]},
            ]
        params = dict(det.manifest.model_info)
        params.update({"artifact": det.artifact.name, "backend": det.backend, "device": det.device, "precision": det.precision})
        return {
            "name": self.name,
            "versions": ["1"],
            "platform": "edgeanomaly",
            "inputs": [
                {"name": "image", "datatype": "FP32", "shape": [-1, 3, h, w]},
                {"name": "image_bytes", "datatype": "BYTES", "shape": [-1]},
            ],
            "outputs": outputs,
            "parameters": params,
        }

    def _check_outputs(self, requested: list[str] | None) -> list[str]:
        if requested is None:
            return list(DEFAULT_OUTPUTS)
        known = self.output_names
        unknown = [o for o in requested if o not in known]
        if unknown:
            raise BadRequest(f"Expected outputs among {', '.join(known)}, got unknown {', '.join(map(repr, unknown))}")
        if len(set(requested)) != len(requested):
            raise BadRequest(f"Expected each output once, got {requested}")
        return requested

    def infer(self, inputs: dict[str, Any], requested: list[str] | None = None, binary: set[str] | frozenset[str] = frozenset("*"),
              encode: Callable[[dict[str, np.ndarray]], Any] | None = None) -> tuple[Any, int]:
        """Score a request's images; returns ``({output: array}, number of images)``.

        ``binary``: outputs the answer carries as raw bytes (``"*"``: all), for the size
        estimate. ``encode``: called on the outputs while the request still holds its pixels
        of the budget; its result is returned in place of the outputs.

        Thread-safe: concurrent requests run at once (module docstring).

        Raises:
            BadRequest: wrong input name, datatype, shape or value range; undecodable image bytes;
                413 for a request over the pixel or response budget.
        """
        with self._count_lock:
            self._in_flight += 1
        try:
            return self._infer(inputs, requested, binary, encode)
        except MemoryError as exc:
            raise BadRequest(f"Not enough memory on the server for this request ({exc or 'MemoryError'}); retry later, "
                             "or start the server with a lower --max-request-mp", 503) from exc
        finally:
            with self._count_lock:
                self._in_flight -= 1

    def _concurrent(self) -> bool:
        """Whether another request is being scored now (then this one runs for throughput)."""
        with self._count_lock:
            busy = self._in_flight > 1
            self.concurrent_images += busy
        return busy

    def _infer(self, inputs: dict[str, Any], requested: list[str] | None, binary: set[str] | frozenset[str],
               encode: Callable[[dict[str, np.ndarray]], Any] | None) -> tuple[Any, int]:
        outputs = self._check_outputs(requested)
        if len(inputs) != 1 or next(iter(inputs)) not in ("image", "image_bytes"):
            raise BadRequest(
                f"Expected exactly one input, 'image' (FP32 [N, 3, H, W]) or 'image_bytes' (BYTES [N]), got {sorted(inputs)}"
            )
        name, value = next(iter(inputs.items()))
        det = self.detector
        h, w = det.input_size
        if name == "image":
            if not isinstance(value, np.ndarray) or value.dtype != np.float32:
                got = "BYTES" if isinstance(value, list) else str(getattr(value, "dtype", type(value).__name__))
                raise BadRequest(f"Expected input 'image' of datatype FP32, got {got}")
            if value.ndim != 4 or value.shape[1:] != (3, h, w):
                raise BadRequest(f"Expected input 'image' of shape [N, 3, {h}, {w}], got {list(value.shape)}")
            count = value.shape[0]
            self._check_count(count)
            if not np.isfinite(value).all() or value.min() < 0.0 or value.max() > 1.0:
                raise BadRequest("Expected input 'image' with finite values in [0, 1] (RGB scaled by 1/255), got values outside")
            sizes = [(w, h)] * count
            self._check_response(outputs, binary, sizes, count)
            with self.budget.hold(count * h * w):
                predictions = det.predict_tensor(value, throughput=count == 1 and self._concurrent())
                return self._finish(predictions, outputs, encode), count
        if not isinstance(value, list):
            raise BadRequest(f"Expected input 'image_bytes' of datatype BYTES, got {getattr(value, 'dtype', type(value).__name__)}")
        count = len(value)
        self._check_count(count)
        sizes = self._header_sizes(value)
        if any(o in _MAP_OUTPUTS[:2] for o in outputs) and len(set(sizes)) > 1:
            raise BadRequest("Expected images of one size when anomaly_map or pred_mask is requested (maps are returned "
                             f"at the original size), got sizes {sorted({(sh, sw) for sw, sh in sizes})}")
        self._check_response(outputs, binary, sizes, count)

        with self.budget.hold(sum(sw * sh for sw, sh in sizes)):
            images = []
            for i, data in enumerate(value):
                try:
                    images.append(decode_image(bytes(data), f"image_bytes[{i}]"))
                except ImageReadError as exc:
                    if isinstance(exc.__cause__, MemoryError):  # the server's want, not the client's fault
                        raise BadRequest(f"{exc}; retry later or lower --max-request-mp", 503) from exc
                    raise BadRequest(f"Expected an image file in image_bytes[{i}]: {exc}") from exc
            try:
                # The Detector's throughput path for several images (predict_tensor does the same).
                if count == 1:
                    predictions = [det.predict(images[0], throughput=self._concurrent())]
                else:
                    predictions = list(det.predict_many(images))
            except EdgeAnomalyError as exc:
                raise BadRequest(str(exc)) from exc
            del images
            return self._finish(predictions, outputs, encode), count

    def _finish(self, predictions: list[Any], outputs: list[str], encode: Callable[[dict[str, np.ndarray]], Any] | None) -> Any:
        collected = self._collect(predictions, outputs)
        del predictions[:]  # the full-size maps of outputs not asked for go now
        return encode(collected) if encode is not None else collected

    def _header_sizes(self, value: list[Any]) -> list[tuple[int, int]]:
        """Each image's ``(width, height)`` from its header, nothing decoded; 413 over the budget."""
        sizes = []
        for i, data in enumerate(value):
            if not data:
                raise BadRequest(f"Expected element {i} of 'image_bytes' to be an encoded image, got 0 bytes")
            size = header_size(bytes(data))
            if size is None:  # no known format or no size in the header: the data layer says which, without decoding
                try:
                    decode_image(bytes(data), f"image_bytes[{i}]")
                except ImageReadError as exc:
                    raise BadRequest(f"Expected an image file in image_bytes[{i}]: {exc}") from exc
                raise AssertionError("decode_image accepted an image without a size")  # pragma: no cover
            if size[0] * size[1] > max_image_pixels():
                sw, sh = size
                raise BadRequest(f"Expected images of at most {max_image_pixels() / 1e6:g} megapixels "
                                 f"($EDGEANOMALY_MAX_IMAGE_PIXELS), got {sw}x{sh} in image_bytes[{i}]", 413)
            sizes.append(size)
        pixels = sum(sw * sh for sw, sh in sizes)
        if pixels > self.max_pixels:
            sw, sh = max(sizes, key=lambda s: s[0] * s[1])
            raise BadRequest(
                f"Expected at most {self.max_pixels / 1e6:g} megapixels of images in one request (--max-request-mp), "
                f"got {len(sizes)} image(s) of {pixels / 1e6:.1f} megapixels (the largest {sw}x{sh}); "
                "send fewer or smaller images per request", 413)
        return sizes

    def _check_response(self, outputs: list[str], binary: set[str] | frozenset[str], sizes: list[tuple[int, int]], count: int) -> None:
        """413 when the answer would exceed ``max_response_bytes`` (maps at the original size)."""
        h, w = self.detector.input_size
        parts, total = [], 64 * len(outputs) * count  # scores and labels: a few bytes each
        for o in outputs:
            if o not in _ELEMENT_BYTES:
                continue
            elements = count * h * w if o == "raw_anomaly_map" else sum(sw * sh for sw, sh in sizes)
            as_binary = o in binary or "*" in binary
            size = elements * _ELEMENT_BYTES[o][0 if as_binary else 1]
            total += size
            parts.append(f"{o} of {elements / 1e6:.1f} M elements as {'binary' if as_binary else 'JSON'} ~{size / 2**20:.0f} MB")
        if total > self.max_response_bytes:
            raise BadRequest(
                f"Expected an answer of at most {self.max_response_bytes / 2**20:g} MB (--max-response-mb), got an "
                f"estimated {total / 2**20:.0f} MB ({'; '.join(parts)}). Ask for the maps with binary_data, ask for "
                "raw_anomaly_map (the model's input size), or send smaller images", 413)

    def _check_count(self, count: int) -> None:
        if not 1 <= count <= self.max_batch:
            raise BadRequest(f"Expected 1 to {self.max_batch} images in one request, got {count}")

    @staticmethod
    def _collect(predictions: list[Any], outputs: list[str]) -> dict[str, np.ndarray]:
        def stack(attr: str, dtype: Any) -> np.ndarray:
            return np.stack([getattr(p, attr) for p in predictions])[:, None].astype(dtype, copy=False)

        table = {
            "pred_score": lambda: np.array([p.score for p in predictions], np.float32),
            "raw_score": lambda: np.array([p.raw_score for p in predictions], np.float32),
            "pred_label": lambda: np.array([p.label for p in predictions], np.bool_),
            "anomaly_map": lambda: stack("anomaly_map", np.float32),
            "pred_mask": lambda: stack("mask", np.bool_),
            "raw_anomaly_map": lambda: stack("raw_anomaly_map", np.float32),
        }
        return {name: table[name]() for name in outputs}

    def close(self) -> None:
        if self.detector is not None:
            self.detector.close()
            self.detector = None
