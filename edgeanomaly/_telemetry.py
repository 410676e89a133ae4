"""No telemetry unless asked for: OpenVINO, NNCF and ONNX Runtime stay quiet and write nothing.

A tool for factory networks must not send usage data or write outside the paths it was
given. Left alone, importing ``openvino`` or ``nncf`` loads ``openvino_telemetry``, which
writes ``~/intel/openvino_ga_cid`` and ``~/intel/stats`` and forks sender processes during
an INT8 export; importing ``onnxruntime`` writes ``~/.cache/Microsoft/DeveloperTools/.onnxruntime``.

Both libraries fall back to a no-op when ``openvino_telemetry`` cannot be imported, and ONNX
Runtime honours ``ORT_DISABLE_TELEMETRY``; :func:`disable` uses exactly these switches. It runs
when ``edgeanomaly`` is imported. To opt in, set ``EDGEANOMALY_TELEMETRY=1`` before that import.

matplotlib (validate's figures) is not telemetry but writes its font cache into ``~/.cache``
and ``~/.config``; :func:`keep_matplotlib_out_of_home` gives it a private directory instead.
torch's optimisers import ``torch._dynamo``, whose import makes its compile cache folder
``$TMPDIR/torchinductor_<user>`` and leaves it; :func:`keep_torch_cache_out_of_temp` gives it
a private directory too. Both are removed at exit.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys

from edgeanomaly._tempdirs import make_temp_dir, remove_temp_dir

__all__ = ["OPT_IN_VARIABLE", "disable", "keep_matplotlib_out_of_home", "keep_torch_cache_out_of_temp"]

OPT_IN_VARIABLE = "EDGEANOMALY_TELEMETRY"


def disable() -> bool:
    """Turn the telemetry of OpenVINO, NNCF and ONNX Runtime off for this process (and its children).

    Returns False when the user opted in (``EDGEANOMALY_TELEMETRY=1``) and nothing was changed.
    """
    if os.environ.get(OPT_IN_VARIABLE, "").strip() == "1":
        return False
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    if sys.modules.get("openvino_telemetry") is not None:
        # Imported before edgeanomaly (e.g. `import nncf` first): too late to stop it here.
        logging.getLogger("edgeanomaly").warning(
            "openvino_telemetry was imported before edgeanomaly, so its telemetry stays on; import "
            "edgeanomaly first or run `opt_in_out --opt_out` to turn it off."
        )
        return True
    # A None entry makes `import openvino_telemetry` raise ImportError, which OpenVINO and NNCF
    # both handle by using their built-in no-op stubs.
    sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]
    return True


def keep_matplotlib_out_of_home() -> None:
    """Call before importing matplotlib: its config and font cache go to a temporary directory
    removed at exit, unless the user set ``MPLCONFIGDIR`` or matplotlib is already imported."""
    if "MPLCONFIGDIR" in os.environ or "matplotlib" in sys.modules:
        return
    _private_folder("MPLCONFIGDIR", "matplotlib")


def keep_torch_cache_out_of_temp() -> None:
    """Call before ``torch._dynamo`` is imported (a torch optimiser's first use imports it): its
    cache folder goes to a temporary directory removed at exit, not ``$TMPDIR/torchinductor_<user>``
    left behind, unless the user set ``TORCHINDUCTOR_CACHE_DIR`` or it is already imported."""
    if "TORCHINDUCTOR_CACHE_DIR" in os.environ or "torch._dynamo" in sys.modules:
        return
    _private_folder("TORCHINDUCTOR_CACHE_DIR", "torchinductor")


def _private_folder(variable: str, kind: str) -> None:
    """``$variable`` names a new private temporary directory, removed at exit (and on Ctrl-C or
    SIGTERM, which end the CLI through Python's exit; after a SIGKILL, by the next command's
    :func:`~edgeanomaly._tempdirs.sweep`)."""
    folder = make_temp_dir(kind)
    os.environ[variable] = str(folder)
    atexit.register(remove_temp_dir, folder)
