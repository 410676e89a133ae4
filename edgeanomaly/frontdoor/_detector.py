"""The front door's detector: the runtime's :class:`~edgeanomaly.runtime.Detector` with the
next step (``validate``) on it. Torch-free."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

from edgeanomaly.errors import ConfigError
from edgeanomaly.frontdoor._forward import Forward
from edgeanomaly.frontdoor._validate import validate

if TYPE_CHECKING:
    from edgeanomaly.bundle import Manifest
    from edgeanomaly.data import PreprocessConfig
    from edgeanomaly.frontdoor._bundle import Bundle
    from edgeanomaly.runtime import Detector as RuntimeDetector
    from edgeanomaly.runtime import ExecutionChoice, Prediction
    from edgeanomaly.tooling import ValidationReport

_RUNTIME = "runtime_detector"


class Detector:
    """A bundle loaded for inference on one backend and device; make it with
    :func:`edgeanomaly.load` or :meth:`edgeanomaly.Bundle.load`.

    Scoring is the runtime's :class:`edgeanomaly.runtime.Detector` (``runtime_detector``), unchanged;
    this class adds the next step, :meth:`validate`, on the artifact, backend and device that run
    here. Thread-safe as the runtime's; use as a context manager or call :meth:`close`.

    >>> import edgeanomaly as ea
    >>> with ea.load("pc.bundle", device="CPU") as detector:          # doctest: +SKIP
    ...     p = detector.predict("part.png")
    ...     report = detector.validate("data", category="metal")
    >>> p.label, report.outcome                                       # doctest: +SKIP
    (True, 'PASS')
    """

    def __init__(self, detector: RuntimeDetector, bundle: Bundle, load_options: dict[str, Any]) -> None:
        #: the runtime's detector that scores the images
        self.runtime_detector = detector
        #: the bundle it was loaded from
        self.bundle = bundle
        #: the keyword arguments ``load`` was called with (``validate`` repeats the relevant ones)
        self.load_options = dict(load_options)

    # -- what runs where (the runtime detector's attributes, read through) -----------------------
    backend = Forward[str](_RUNTIME, 'Registry name of the backend that runs the graph ("openvino", "onnxruntime", ...).')
    device = Forward[str](_RUNTIME, "The device that runs the graph (also after AUTO or a fallback list).")
    precision = Forward[str](_RUNTIME, 'Artifact and execution precision read back from the backend, e.g. "fp32 (f32 execution)".')
    execution = Forward["ExecutionChoice"](_RUNTIME, "The execution precision, why it was chosen, and the drift export measured for it.")
    selection = Forward[str](_RUNTIME, "Why load chose this artifact (and backend).")
    artifact = Forward[Any](_RUNTIME, "The bundle artifact that was loaded (.name, .format, .precision).")
    task = Forward[str](_RUNTIME, '"segmentation" (score and map) or "classification" (score only).')
    input_size = Forward["tuple[int, int]"](_RUNTIME, "(h, w) model input size.")
    preprocessing = Forward["PreprocessConfig"](_RUNTIME, "How images become the graph's input (the bundle's).")
    calibration = Forward[Any](_RUNTIME, "The calibration that normalises and thresholds the outputs.")
    manifest = Forward["Manifest"](_RUNTIME, "The bundle's manifest.")

    def info(self) -> dict[str, Any]:
        """What runs where, for logs (:meth:`edgeanomaly.runtime.Detector.info`)."""
        return self.runtime_detector.info()

    def __repr__(self) -> str:
        return repr(self.runtime_detector)

    # -- scoring ---------------------------------------------------------------------------------
    def predict(self, image: Any, *, color: str = "RGB", source: Any = None, throughput: bool = False) -> Prediction:
        """Score one image: a file path or an (H, W[, 3|4]) uint8 array; see
        :meth:`edgeanomaly.runtime.Detector.predict`. The map comes back at the image's size."""
        return self.runtime_detector.predict(image, color=color, source=source, throughput=throughput)

    def predict_batch(self, images: Sequence[Any], **options: Any) -> list[Prediction]:
        """Several images in input order; see :meth:`edgeanomaly.runtime.Detector.predict_batch`."""
        return self.runtime_detector.predict_batch(images, **options)

    def predict_many(self, images: Iterable[Any], **options: Any) -> Iterator[Prediction]:
        """The throughput path over an iterable of images; see
        :meth:`edgeanomaly.runtime.Detector.predict_many`."""
        return self.runtime_detector.predict_many(images, **options)

    def stream(self, source: int | str | os.PathLike[str], **options: Any) -> Iterator[tuple[Any, Prediction]]:
        """``(frame_or_path, Prediction)`` from a video, a camera or a watched folder; see
        :func:`edgeanomaly.runtime.stream`."""
        return self.runtime_detector.stream(source, **options)

    # -- the next step ---------------------------------------------------------------------------
    def validate(
        self,
        data: str | os.PathLike[str],
        *,
        category: str | None = None,
        tolerance: float | None = None,
        pixel_resolution: str = "original",
        progress: Callable[[str, int, int], None] | None = None,
    ) -> ValidationReport:
        """Judge the artifact this detector runs, on its backend and device, against the ground
        truth of ``data`` and the bundle's torch reference (:func:`edgeanomaly.validate` with
        ``artifacts=[this one]``; validation loads it once more, at the execution precision
        this detector was loaded with: the default choice, or f32 with ``exact=True``).

        Raises:
            ConfigError: the detector was loaded with an explicit ``inference_precision``
                other than f32: validation judges the default choice or f32 only.
        """
        chosen = self.load_options.get("inference_precision")
        if chosen not in (None, "f32"):
            raise ConfigError(
                f"Detector.validate judges the execution precision load chooses by default, or f32 (exact=True); "
                f"this detector was loaded with inference_precision={chosen!r}. Load it without inference_precision, "
                "or with exact=True, to validate it"
            )
        exact = bool(self.load_options.get("exact")) or chosen == "f32"
        remote = {k: self.load_options[k] for k in ("url", "model_name") if self.load_options.get(k) is not None}
        # a server reports its own device; validation connects with the device load was given
        device = self.load_options.get("device", "CPU") if remote else self.device
        trust = self.load_options.get("trust")
        return validate(self.bundle, data, category=category, backend=self.backend, device=device,
                        artifacts=[self.artifact.name], tolerance=tolerance, exact=exact,
                        pixel_resolution=pixel_resolution, progress=progress, trust=trust, **remote)

    # -- lifetime --------------------------------------------------------------------------------
    def close(self) -> None:
        """Release the backend (and a zip bundle's temporary files)."""
        self.runtime_detector.close()

    def __enter__(self) -> Detector:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

