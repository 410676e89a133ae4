"""edgeanomaly: visual anomaly detection from the training machine to the edge device.

Importing the package is cheap and torch-free: subpackages are imported on demand.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
