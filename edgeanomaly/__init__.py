"""edgeanomaly: visual anomaly detection from the training machine to the edge device.

The front door (:mod:`edgeanomaly.frontdoor`)::

    import edgeanomaly as ea

    run = ea.fit("patchcore", "data", category="metal", out="pc.run")   # [train] extra: torch
    bundle = run.export("pc.bundle")
    with ea.load("pc.bundle", device="CPU") as detector:                # no torch
        print(detector.predict("part.png").score)
        print(detector.validate("data", category="metal").outcome)

Importing the package is cheap and torch-free: the front door's names and the subpackages are
imported on first use. It turns off the telemetry of OpenVINO, NNCF and ONNX Runtime
(``EDGEANOMALY_TELEMETRY=1`` opts in; see :mod:`edgeanomaly._telemetry`). It imports the
plugin modules named in ``$EDGEANOMALY_PLUGINS`` (:mod:`edgeanomaly._plugins`), none by default.
"""

from __future__ import annotations

from edgeanomaly import _plugins, _telemetry
from edgeanomaly._lazy import lazy_exports

_telemetry.disable()

__version__ = "0.1.0"

#: the front door: resolved on first use (PEP 562), so ``import edgeanomaly`` imports no runtime
_FRONT_DOOR = {name: "edgeanomaly.frontdoor" for name in (
    "fit", "load", "validate", "benchmark", "calibrate", "keygen", "sign", "Run", "Bundle", "Detector",
)}

__all__ = ["__version__", *sorted(_FRONT_DOOR)]
__getattr__, _front_door_names = lazy_exports(__name__, _FRONT_DOOR)


def __dir__() -> list[str]:
    return sorted({*globals(), *_front_door_names()} - {"annotations", "lazy_exports"})


# Last: a plugin module imports edgeanomaly's layers, which need the names above.
_plugins.load_plugins()
