"""The device half of the front door: a bundle on disk and what to do with it. Torch-free.

Each function wraps one public API of a lower layer and changes nothing of it:
``load`` -> :func:`edgeanomaly.runtime.load`, ``validate`` -> :func:`edgeanomaly.tooling.validate_bundle`,
``benchmark`` -> :func:`edgeanomaly.tooling.benchmark_bundle`, ``calibrate`` ->
:func:`edgeanomaly.tooling.recalibrate`, ``serve`` -> :func:`edgeanomaly.serve.serve`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import edgeanomaly.serve as serving
from edgeanomaly import judging, runtime, tooling
from edgeanomaly.bundle import (
    Signature,
    SigningKey,
    describe_bundle,
    generate_keypair,
    read_bundle,
    resolve_trust,
    sign_bundle,
    verify_bundle,
)
from edgeanomaly.frontdoor._detector import Detector
from edgeanomaly.frontdoor._validate import TrustLike, _path, validate

if TYPE_CHECKING:
    from edgeanomaly.bundle import Calibration, Manifest, TrustedKeys
    from edgeanomaly.export import ExportReport
    from edgeanomaly.tooling import BenchmarkRow, ValidationReport


class Bundle:
    """A bundle on disk (a directory or one ``.zip``) with the next steps on it.

    ``Run.export`` returns one; ``Bundle(path)`` names an existing one (nothing is
    read until a method needs it). A ``Bundle`` is path-like: it goes wherever a bundle path
    does. Every method runs without torch.

    >>> import edgeanomaly as ea
    >>> bundle = ea.Bundle("pc.bundle")                                  # doctest: +SKIP
    >>> with bundle.load(device="CPU") as detector:                      # doctest: +SKIP
    ...     print(detector.predict("part.png").score)
    >>> bundle.validate("data", category="metal").outcome                # doctest: +SKIP
    'PASS'
    """

    def __init__(self, path: str | os.PathLike[str], *, export_report: ExportReport | None = None) -> None:
        self.path = Path(os.fspath(path))
        #: what export wrote and measured (artifacts, sizes, parity, seconds); None when opened from disk
        self.export_report = export_report

    def __fspath__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"Bundle({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Bundle) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    # -- what it holds ---------------------------------------------------------------------------
    @property
    def manifest(self) -> Manifest:
        """The parsed ``manifest.json`` (read each time: ``calibrate`` may rewrite it)."""
        with read_bundle(self.path, verify=False) as opened:
            return opened.manifest

    def describe(self, trust: TrustLike = None) -> str:
        """Model, input contract, calibration, artifacts, sizes and signature, as ``edgeanomaly
        info`` prints them; with ``trust`` (key files or folders, or ``TrustedKeys``) the
        signature is checked against those keys."""
        keys = resolve_trust(trust)  # as load and verify: trust, else $EDGEANOMALY_TRUST
        with read_bundle(self.path, verify=False) as opened:
            return describe_bundle(opened, trust=keys)

    def verify(self, trust: TrustLike = None) -> list[str]:
        """Problems with the bundle (empty: intact), as ``edgeanomaly info`` reports them: every
        checksum, each graph's own metadata against the manifest, and with ``trust`` the
        signature (unsigned, an unknown key or a signature that does not verify is a problem)."""
        return verify_bundle(self.path, trust=trust, graphs=True)

    def sign(self, key: str | os.PathLike[str] | SigningKey) -> Signature:
        """Sign this bundle with an Ed25519 private key (:func:`edgeanomaly.sign`)."""
        return sign(self, key)

    # -- the next steps --------------------------------------------------------------------------
    def load(self, backend: str = "auto", device: str = "CPU", *, exact: bool = False, **options: Any) -> Detector:
        """Load for inference: :func:`edgeanomaly.load` on this bundle."""
        return load(self, backend, device, exact=exact, **options)

    def validate(self, data: str | os.PathLike[str], **options: Any) -> ValidationReport:
        """Judge every artifact against ground truth: :func:`edgeanomaly.validate` on this bundle."""
        return validate(self, data, **options)

    def benchmark(self, data: str | os.PathLike[str] | None = None, **options: Any) -> list[BenchmarkRow]:
        """Latency, throughput and accuracy of every artifact x backend: :func:`edgeanomaly.benchmark`."""
        return benchmark(self, data, **options)

    def calibrate(self, data: str | os.PathLike[str], **options: Any) -> Calibration:
        """New thresholds from this device's images: :func:`edgeanomaly.calibrate` on this bundle."""
        return calibrate(self, data, **options)

    def serve(self, **options: Any) -> None:
        """Serve over the Open Inference Protocol until SIGTERM: :func:`edgeanomaly.frontdoor.serve`."""
        serve([self], **options)


def load(
    bundle: str | os.PathLike[str],
    backend: str = "auto",
    device: str = "CPU",
    *,
    exact: bool = False,
    **options: Any,
) -> Detector:
    """Load a bundle for inference, without torch.

    Args:
        bundle: bundle directory, ``.zip`` file, or an :class:`edgeanomaly.Bundle`.
        backend: ``"auto"`` (the best installed backend for ``device``) or a registered name
            (``"openvino"``, ``"onnxruntime"``, ``"remote"``).
        device: ``"CPU"``, ``"GPU"``, ``"NPU"``, ``"AUTO"`` (OpenVINO); ``"CPU"``, ``"CUDA"``
            (ONNX Runtime). Never falls back silently to another device.
        exact: run at f32 execution (exact to the torch model within 1e-4 for FP32) instead of
            the fastest execution precision that passed at export and this device supports.
        options: every other setting of :func:`edgeanomaly.runtime.load` (``precision``,
            ``artifact``, ``cache_dir``, ``num_threads``, ``url``, ...).

    Returns:
        a :class:`Detector`: ``predict`` scores images, ``validate`` judges what runs.

    >>> import edgeanomaly as ea
    >>> with ea.load("pc.bundle") as detector:                 # doctest: +SKIP
    ...     p = detector.predict("part.png")
    """
    path = _path(bundle)
    handle = bundle if isinstance(bundle, Bundle) else Bundle(path)
    detector = runtime.load(path, backend, device, exact=exact, **options)
    return Detector(detector, handle, {"backend": backend, "device": device, "exact": exact, **options})


def benchmark(
    bundle: str | os.PathLike[str],
    data: str | os.PathLike[str] | None = None,
    *,
    category: str | None = None,
    repeats: int = 30,
    throughput_images: int = 64,
    cold_start: bool = True,
    exact: bool = False,
    progress: Callable[[str], None] | None = None,
    url: str | None = None,
    model_name: str | None = None,
) -> list[BenchmarkRow]:
    """Latency p50/p95, throughput, accuracy (with ``data``) and drift of every artifact x
    backend x device: :func:`edgeanomaly.tooling.benchmark_bundle`. A combination that fails is
    a row with its status, never an exception. ``edgeanomaly.reports.benchmark_markdown``
    renders the rows as the CLI's table.
    """
    return tooling.benchmark_bundle(_path(bundle), data, category=category, repeats=repeats,
                                    throughput_images=throughput_images, cold_start=cold_start, progress=progress,
                                    url=url, model_name=model_name, exact=exact)


def calibrate(
    bundle: str | os.PathLike[str],
    data: str | os.PathLike[str],
    *,
    category: str | None = None,
    split: str = "auto",
    quantile: float = judging.DEFAULT_QUANTILE,
    backend: str = "auto",
    device: str = "CPU",
    precision: str | None = None,
    artifact: str | None = None,
    write: bool = True,
    sign_key: SigningKey | str | os.PathLike[str] | None = None,
    on_image: Callable[[int, int], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> Calibration:
    """Recompute thresholds and normalisation from this device's images and (``write=True``)
    rewrite the manifest atomically, keeping the previous calibration in its history:
    :func:`edgeanomaly.tooling.recalibrate`. Detectors loaded before keep the old calibration;
    load again. A signature covered the old calibration: it is removed unless ``sign_key`` is
    given, which signs the new manifest.

    Returns:
        the new :class:`edgeanomaly.bundle.Calibration`.
    """
    return tooling.recalibrate(_path(bundle), data, backend=backend, device=device, precision=precision,
                               artifact=artifact, split=split, quantile=quantile, category=category, write=write,
                               sign_key=sign_key, on_image=on_image, on_warning=on_warning)


def serve(
    bundles: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    names: Sequence[str] | None = None,
    host: str = "127.0.0.1",
    http_port: int = 8080,
    grpc_port: int | None = 8081,
    **options: Any,
) -> None:
    """Serve bundles over the Open Inference Protocol (KServe V2, REST and gRPC) until SIGTERM
    or SIGINT (blocking; ``[serve]`` extra): :func:`edgeanomaly.serve.serve`.

    Args:
        names: the served model names, one per bundle (default: each bundle's folder name).
        options: the server's limits (``max_request_bytes``, ``max_batch``, ``grpc_threads``)
            and the settings of :func:`load` (``backend``, ``device``, ``exact``, ...).
    """
    if isinstance(bundles, (str, os.PathLike)):
        bundles = [bundles]
    serving.serve([str(_path(b)) for b in bundles], names=names, host=host, http_port=http_port,
                  grpc_port=grpc_port, **options)


def sign(bundle: str | os.PathLike[str], key: str | os.PathLike[str] | SigningKey) -> Signature:
    """Sign a bundle (directory or ``.zip``) with an Ed25519 private key: writes a detached
    ``signature.json`` over the manifest digest, which covers every artifact
    (:func:`edgeanomaly.bundle.sign_bundle`). A device loading with ``trust=`` then runs it.

    >>> import edgeanomaly as ea
    >>> private, public = ea.keygen("keys")                       # doctest: +SKIP
    >>> ea.sign("pc.bundle", private).key_id                      # doctest: +SKIP
    '3f9a0c2b7d1e4a55'
    >>> ea.load("pc.bundle", trust=public)                        # doctest: +SKIP
    """
    return sign_bundle(_path(bundle), key)


def keygen(out: str | os.PathLike[str], name: str = "signing", *, overwrite: bool = False) -> tuple[Path, Path]:
    """Write a new Ed25519 key pair into ``out``: ``(private key, public key)`` paths
    (:func:`edgeanomaly.bundle.generate_keypair`). Only the public key goes to a device."""
    return generate_keypair(out, name, overwrite=overwrite)
