"""The :class:`Bundle` object: an opened, verified bundle on disk."""

from __future__ import annotations

import weakref
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from edgeanomaly._tempdirs import remove_temp_dir
from edgeanomaly.bundle._calibration import Calibration
from edgeanomaly.bundle._manifest import Artifact, Manifest
from edgeanomaly.bundle._paths import resolve_inside
from edgeanomaly.errors import BundleError
from edgeanomaly.registry import PRECISIONS

__all__ = ["Bundle"]


class Bundle:
    """An opened bundle. Get one from :func:`edgeanomaly.bundle.read_bundle`.

    A bundle read from a ``.zip`` lives in a temporary directory owned by this object and
    removed by :meth:`close` (or when the object is garbage-collected); use it as a
    context manager.

    Attributes:
        root: the bundle directory (the temporary extraction directory for a zip).
        manifest: the validated :class:`Manifest`.
        source: the path the bundle was read from (directory or ``.zip``).
        verified: whether every sha256 and the manifest checksum were checked on reading.
        signature: the bundle's :class:`~edgeanomaly.bundle.Signature` (``signature.json``),
            or None when unsigned; ``signature.trusted_by`` is set when it was checked against
            trusted keys (``read_bundle(..., trust=...)``), else None (read, not checked).
        signature_problem: why ``signature.json`` could not be read (malformed), else None.

    >>> with read_bundle("bundles/patchcore") as bundle:          # doctest: +SKIP
    ...     artifact = bundle.artifact(format="openvino")
    ...     xml = bundle.path(artifact)
    """

    def __init__(
        self,
        root: Path,
        manifest: Manifest,
        *,
        source: Path | None = None,
        verified: bool = False,
        tempdir: Path | None = None,
    ) -> None:
        self.root = Path(root)
        self.manifest = manifest
        self.source = Path(source) if source is not None else self.root
        self.verified = verified
        self.signature: Any = None
        self.signature_problem: str | None = None
        self._closed = False
        self._cleanup = (
            weakref.finalize(self, remove_temp_dir, str(tempdir)) if tempdir is not None else None
        )

    # -- convenience views -------------------------------------------------------------
    @property
    def artifacts(self) -> list[Artifact]:
        """The artifacts in manifest order."""
        return list(self.manifest.artifacts)

    @property
    def calibration(self) -> Calibration:
        return self.manifest.calibration

    @property
    def model_info(self) -> dict[str, str]:
        return dict(self.manifest.model_info)

    @property
    def closed(self) -> bool:
        return self._closed

    def artifact(
        self, name: str | None = None, format: str | None = None, precision: str | None = None
    ) -> Artifact:
        """The artifact matching every given criterion.

        When several match, the most exact precision is preferred (unless ``precision`` is
        given: fp32 > fp16 > int8, the registry's order), then manifest order.

        Raises:
            BundleError: nothing matches; the message lists the artifacts there are.

        >>> bundle.artifact(format="openvino", precision="fp16").path   # doctest: +SKIP
        'openvino-fp16/model.xml'
        """
        matches = [
            a
            for a in self.manifest.artifacts
            if (name is None or a.name == name)
            and (format is None or a.format == format)
            and (precision is None or a.precision == precision)
        ]
        if not matches:
            wanted = ", ".join(
                f"{k}={v!r}" for k, v in (("name", name), ("format", format), ("precision", precision)) if v is not None
            )
            available = ", ".join(f"{a.name} ({a.format}, {a.precision})" for a in self.manifest.artifacts)
            raise BundleError(f"Bundle {self.source} has no artifact with {wanted}; it has: {available}")
        if precision is None:
            matches.sort(key=lambda a: PRECISIONS.index(a.precision))  # stable: manifest order otherwise
        return matches[0]

    def path(self, artifact: Artifact | str) -> Path:
        """Absolute path of the file a backend loads for ``artifact`` (an Artifact or a name)."""
        self._check_open()
        if isinstance(artifact, str):
            artifact = self.artifact(name=artifact)
        if artifact not in self.manifest.artifacts:
            raise BundleError(f"Artifact {artifact.name!r} does not belong to bundle {self.source}")
        target = resolve_inside(self.root, artifact.path)
        if target is None:  # unreachable for a validated manifest; kept as a guard
            raise BundleError(f"Bundle {self.source}: artifact path {artifact.path} points outside the bundle")
        return target

    def reference(self) -> dict[str, np.ndarray] | None:
        """The arrays of ``reference.npz`` (``images``, ``pred_score``, ``anomaly_map``, ``names``),
        or ``None`` when the bundle has no reference file. Loaded without pickle."""
        self._check_open()
        ref = self.manifest.reference["file"]
        if ref is None:
            return None
        target = resolve_inside(self.root, ref.path)
        if target is None:
            raise BundleError(f"Bundle {self.source}: reference path {ref.path} points outside the bundle")
        try:
            with np.load(target, allow_pickle=False) as data:
                return {key: data[key] for key in data.files}
        except (OSError, ValueError) as exc:
            raise BundleError(f"Bundle {self.source}: reference file {ref.path} cannot be read as .npz ({exc})") from exc

    # -- lifetime ----------------------------------------------------------------------
    def close(self) -> None:
        """Release the bundle; removes the extraction directory of a zip. Idempotent."""
        self._closed = True
        if self._cleanup is not None:
            self._cleanup()

    def _check_open(self) -> None:
        if self._closed:
            raise BundleError(f"Bundle {self.source} is closed")

    def __enter__(self) -> Bundle:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        names = ", ".join(a.name for a in self.manifest.artifacts)
        state = ", closed" if self._closed else ""
        return f"Bundle({str(self.source)!r}, model={self.manifest.model_info['model']!r}, artifacts=[{names}]{state})"

    def __getstate__(self) -> Any:  # a temporary directory cannot be shared through pickling
        raise TypeError("Bundle objects cannot be pickled; pickle bundle.source and read it again")
