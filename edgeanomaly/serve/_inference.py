"""One bundle behind the server: V2 tensors in, calibrated predictions out (no kserve here).

Inputs (one per request):
    ``image``        FP32 ``[N, 3, H, W]``: the graph contract's tensor, already preprocessed.
    ``image_bytes``  BYTES ``[N]``: encoded PNG/JPEG/BMP/TIFF files, decoded and preprocessed
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
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

from edgeanomaly.errors import EdgeAnomalyError, ImageReadError
from edgeanomaly.serve._protocol import BadRequest

__all__ = ["ServedBundle", "DEFAULT_OUTPUTS"]

DEFAULT_OUTPUTS = ("pred_score", "raw_score", "pred_label")
_MAP_OUTPUTS = ("anomaly_map", "pred_mask", "raw_anomaly_map")


class ServedBundle:
    """A bundle loaded for serving.

    Args:
        bundle: bundle directory or ``.zip``.
        name: model name on the server.
        backend, device, precision, artifact, exact, trust: as :func:`edgeanomaly.runtime.load`.
        max_batch: most images accepted in one request.
    """

    def __init__(self, bundle: str | os.PathLike[str], name: str, *, backend: str = "auto", device: str = "CPU",
                 precision: str = "fp32", artifact: str | None = None, max_batch: int = 64, exact: bool = False,
                 trust: Any = None) -> None:
        self.bundle, self.name = bundle, name
        self._load_args = {"backend": backend, "device": device, "precision": precision, "artifact": artifact, "exact": exact,
                           "trust": trust}
        self.max_batch = max_batch
        self.detector: Any = None
        self._in_flight = 0  # requests being scored now (infer), to send concurrent ones to the throughput model
        self._count_lock = threading.Lock()
        #: Images scored on the throughput model because other requests were in flight.
        self.concurrent_images = 0

    def load(self) -> None:
        """Load the bundle and run one warm-up image, so the first request is not slow."""
        from edgeanomaly.runtime import load

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

    def infer(self, inputs: dict[str, Any], requested: list[str] | None = None) -> tuple[dict[str, np.ndarray], int]:
        """Score a request's images; returns ``({output: array}, number of images)``.

        Thread-safe: concurrent requests run at once (module docstring).

        Raises:
            BadRequest: wrong input name, datatype, shape or value range; undecodable image bytes.
        """
        with self._count_lock:
            self._in_flight += 1
        try:
            return self._infer(inputs, requested)
        finally:
            with self._count_lock:
                self._in_flight -= 1

    def _concurrent(self) -> bool:
        """Whether another request is being scored now (then this one runs for throughput)."""
        with self._count_lock:
            busy = self._in_flight > 1
            self.concurrent_images += busy
        return busy

    def _infer(self, inputs: dict[str, Any], requested: list[str] | None) -> tuple[dict[str, np.ndarray], int]:
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
            predictions = det.predict_tensor(value, throughput=count == 1 and self._concurrent())
        else:
            if not isinstance(value, list):
                raise BadRequest(f"Expected input 'image_bytes' of datatype BYTES, got {getattr(value, 'dtype', type(value).__name__)}")
            count = len(value)
            self._check_count(count)
            images = []
            for i, data in enumerate(value):
                if not data:
                    raise BadRequest(f"Expected element {i} of 'image_bytes' to be an encoded image, got 0 bytes")
                try:
                    from edgeanomaly.data import decode_image

                    images.append(decode_image(bytes(data), f"image_bytes[{i}]"))
                except ImageReadError as exc:
                    raise BadRequest(f"Expected a PNG, JPEG, BMP or TIFF file in image_bytes[{i}]: {exc}") from exc
            if any(o in _MAP_OUTPUTS[:2] for o in outputs) and len({im.shape[:2] for im in images}) > 1:
                raise BadRequest("Expected images of one size when anomaly_map or pred_mask is requested (maps are returned "
                                 f"at the original size), got sizes {sorted({im.shape[:2] for im in images})}")
            try:
                # The Detector's throughput path for several images (predict_tensor does the same).
                if count == 1:
                    predictions = [det.predict(images[0], throughput=self._concurrent())]
                else:
                    predictions = list(det.predict_many(images))
            except EdgeAnomalyError as exc:
                raise BadRequest(str(exc)) from exc
        return self._collect(predictions, outputs), count

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
