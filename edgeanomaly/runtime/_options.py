"""``LoadOptions``: every setting of :func:`edgeanomaly.runtime.load` besides the bundle, the
backend and the device, in one documented, validated object."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

from edgeanomaly.errors import ConfigError
from edgeanomaly.runtime._devices import check_inference_precision, check_performance_hint

__all__ = ["LoadOptions"]


@dataclass(frozen=True)
class LoadOptions:
    """How :func:`~edgeanomaly.runtime.load` picks, compiles and checks what it runs.

    ``load(bundle, backend, device, options)`` takes one; ``load(bundle, exact=True)`` builds one
    from keywords (they override the fields of an ``options`` given too). Values are checked
    when the object is made (an unknown OpenVINO precision or performance hint is a
    :class:`~edgeanomaly.errors.ConfigError` here, once), and ``Detector.options`` keeps the one
    a detector was loaded with.

    Attributes:
        precision: artifact precision to pick (``fp32``, ``fp16``, ``int8``). Default: the best
            the device can run (CPU: fp32 > fp16 > int8; NPU: static int8 > fp16); the
            choice and its reason are in ``Detector.selection`` and the log.
        artifact: artifact name (``"openvino-int8"``); overrides ``precision``.
        inference_precision: OpenVINO execution precision ``"f32"``, ``"bf16"`` or ``"f16"``.
            Default: the fastest execution precision that passed the verdict when the bundle
            was exported (recorded per artifact in its manifest), measured on this device kind
            (same device name and OpenVINO release), and that this device supports
            (CPU bf16 > f32, GPU f16 > f32), else f32; ``Detector.execution`` says which and
            why. A bundle exported before these measurements keeps the old default (f32 on
            CPU; on GPU f32 unless the artifact is FP16). A precision the device lacks (f16 on
            most CPUs, bf16 without AVX512-BF16/AMX) is refused with
            :class:`~edgeanomaly.errors.ConfigError` instead of running another one.
        exact: force f32 execution (as ``inference_precision="f32"``): exact to the torch
            model within 1e-4 relative for an FP32 artifact.
        performance_hint: ``"latency"`` (one image at a time) or ``"throughput"`` (OpenVINO).
        cache_dir: OpenVINO compiled-model cache (faster second load), and where
            ``measure_backends`` keeps its decision; none by default.
        num_streams, num_threads: override OpenVINO streams / threads (both backends: threads).
        verify: check the bundle's checksums while reading it.
        backend_options: settings of a backend beyond those above; each must be among its
            registry row's ``options``.
        url, model_name, timeout: ``backend="remote"`` only: the Open Inference Protocol server
            (``http://host:8080`` or ``grpc://host:8081``), the model's name there (default:
            the bundle's folder name without ``.bundle``/``.zip``, as ``edgeanomaly serve``
            names it) and seconds per request. The graph runs on the server; preprocessing and
            calibration stay here, and the artifact is the one the server says it runs.
        measure_backends: with ``backend="auto"`` and no ``artifact``: when several installed
            backends can run an artifact of the chosen precision on ``device``, time warm
            batch-1 inferences of each, idle and with one core kept busy by another process,
            and keep the backend whose worst slowdown against the fastest is smallest (a
            backend a little faster idle can be much slower beside another job); measuring
            costs well under a second beyond the load (the cost, the timings and the reason
            are in ``Detector.selection`` and the log), and the decision is cached in
            ``cache_dir`` when given. ``True``: measure now. ``False``: never; the registry
            order. Default ``None``: measure now when ``cache_dir`` is given, else at the
            first :meth:`Detector.predict_many` or :meth:`Detector.stream` (a caller that runs
            many images), if no other call has run before it; a detector used for single
            :meth:`Detector.predict` calls keeps the registry order and pays nothing. Ignored
            for an explicit backend or artifact.

        trust: trusted public keys: a ``.pub`` file, a folder of them, a list, or
            :class:`edgeanomaly.bundle.TrustedKeys`; default ``$EDGEANOMALY_TRUST`` when set
            (paths separated by ``os.pathsep``), else none. When set, a bundle that is
            unsigned, signed by another key, or whose signature does not verify or covers
            another manifest is refused before any graph is compiled
            (:class:`~edgeanomaly.errors.UnsignedBundleError`,
            :class:`~edgeanomaly.errors.UntrustedKeyError`,
            :class:`~edgeanomaly.errors.BadSignatureError`); ``verify`` must then be True.

    >>> LoadOptions(exact=True, num_threads=2).num_threads
    2
    >>> LoadOptions(inference_precision="BF16").inference_precision
    'bf16'
    """

    precision: str | None = None
    artifact: str | None = None
    inference_precision: str | None = None
    exact: bool = False
    performance_hint: str = "latency"
    cache_dir: str | os.PathLike[str] | None = None
    num_streams: int | None = None
    num_threads: int | None = None
    verify: bool = True
    backend_options: Mapping[str, Any] | None = None
    url: str | None = None
    model_name: str | None = None
    timeout: float | None = None
    measure_backends: bool | None = None
    trust: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "inference_precision", check_inference_precision(self.inference_precision))
        check_performance_hint(self.performance_hint)

    @property
    def openvino_hint(self) -> str:
        """``performance_hint`` in OpenVINO's spelling (``LATENCY`` / ``THROUGHPUT``)."""
        return check_performance_hint(self.performance_hint)

    @classmethod
    def of(cls, options: "LoadOptions | None", settings: Mapping[str, Any]) -> "LoadOptions":
        """``options`` (default: the defaults) with ``settings`` (keywords of ``load``) applied."""
        if options is not None and not isinstance(options, LoadOptions):
            raise ConfigError(f"Expected options as a LoadOptions, got {type(options).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ConfigError(f"load() has no setting {', '.join(map(repr, unknown))}; its settings: {', '.join(sorted(known))}")
        return replace(options, **settings) if options is not None else cls(**settings)
