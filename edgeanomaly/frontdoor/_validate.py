"""The front door's ``validate`` (the one call that judges a bundle), shared by
:meth:`edgeanomaly.Bundle.validate` and :meth:`edgeanomaly.Detector.validate`. Torch-free."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from edgeanomaly import tooling
from edgeanomaly.errors import BundleError

if TYPE_CHECKING:
    from edgeanomaly.tooling import ValidationReport

#: what ``trust=`` takes: key files or folders of ``.pub`` keys, or :class:`TrustedKeys`
TrustLike = Any

__all__ = ["TrustLike", "validate"]


def _path(bundle: str | os.PathLike[str]) -> Path:
    """The bundle's path, checked to exist (a clear error before any backend starts)."""
    path = Path(os.fspath(bundle))
    if not path.exists():
        raise BundleError(f"Expected a bundle directory or .zip file at {path}, but nothing is there")
    return path


def validate(
    bundle: str | os.PathLike[str],
    data: str | os.PathLike[str],
    *,
    category: str | None = None,
    backend: str = "auto",
    device: str = "CPU",
    artifacts: Sequence[str] | None = None,
    tolerance: float | None = None,
    exact: bool = False,
    pixel_resolution: str = "original",
    progress: Callable[[str, int, int], None] | None = None,
    url: str | None = None,
    model_name: str | None = None,
    trust: TrustLike = None,
) -> ValidationReport:
    """Run the bundle's artifacts on the labelled test split of ``data``; judge each against the
    ground truth and the torch reference stored at export (PASS, FAIL or INCONCLUSIVE).

    This is :func:`edgeanomaly.tooling.validate_bundle`; the arguments mean the same there.
    ``report.ok`` is False when an artifact failed; ``edgeanomaly.reports.write_validation_report``
    writes it as JSON, Markdown and HTML.
    """
    return tooling.validate_bundle(_path(bundle), data, category=category, backend=backend, device=device,
                                   artifacts=artifacts, tolerance=tolerance, progress=progress,
                                   pixel_resolution=pixel_resolution, url=url, model_name=model_name, exact=exact,
                                   trust=trust)
