"""edgeanomaly: visual anomaly detection from the training machine to the edge device.

Importing the package is cheap and torch-free: subpackages are imported on demand.
It turns off the telemetry of OpenVINO, NNCF and ONNX Runtime (``EDGEANOMALY_TELEMETRY=1``
opts in; see :mod:`edgeanomaly._telemetry`).
"""

from __future__ import annotations

from edgeanomaly import _telemetry

_telemetry.disable()

__version__ = "0.1.0"

__all__ = ["__version__"]
