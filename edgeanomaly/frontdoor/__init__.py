"""The front door: ``import edgeanomaly as ea`` and the whole path, fit to device, in a few names.

::

    import edgeanomaly as ea

    run = ea.fit("patchcore", "data", category="metal", out="pc.run")  # [train] extra: torch
    bundle = run.export("pc.bundle", precisions=["fp32", "fp16"])     # -> Bundle
    with bundle.load(device="CPU") as detector:                        # no torch from here on
        prediction = detector.predict("part.png")
        report = detector.validate("data", category="metal")         # PASS / FAIL / INCONCLUSIVE
    bundle.benchmark("data", category="metal")
    bundle.calibrate("line3/good", write=False)
    bundle.serve()                                                     # [serve] extra

Each call returns an object that carries the next step: a :class:`Run` exports, a
:class:`Bundle` loads, validates, benchmarks, calibrates and serves, a :class:`Detector`
predicts and validates. Each wraps the public API of one lower layer (``models``,
``export``, ``runtime``, ``tooling``, ``serve``) and changes nothing of it.

torch is imported only by the training calls (``fit``, ``Run.export``, ``Run.open``).
``export`` and ``serve`` are methods, not top-level names of ``edgeanomaly``: those names are
the ``edgeanomaly.export`` and ``edgeanomaly.serve`` packages. ``keygen`` and ``sign`` (or
``Bundle.sign``) sign a bundle; ``load(..., trust=keys)`` and ``Bundle.verify(trust=keys)``
refuse what those keys did not sign.
"""

from __future__ import annotations

from edgeanomaly.frontdoor._bundle import Bundle, benchmark, calibrate, keygen, load, serve, sign, validate
from edgeanomaly.frontdoor._detector import Detector
from edgeanomaly.frontdoor._run import TRAINING_STATE, Run, check_run_dir, export, fit

__all__ = [
    "TRAINING_STATE",
    "Bundle",
    "Detector",
    "Run",
    "benchmark",
    "calibrate",
    "check_run_dir",
    "export",
    "fit",
    "keygen",
    "load",
    "serve",
    "sign",
    "validate",
]
