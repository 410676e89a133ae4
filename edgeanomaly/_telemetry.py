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
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import tempfile

__all__ = ["OPT_IN_VARIABLE", "disable", "keep_matplotlib_out_of_home"]

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
    folder = tempfile.mkdtemp(prefix="edgeanomaly-matplotlib-")
    os.environ["MPLCONFIGDIR"] = folder
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
