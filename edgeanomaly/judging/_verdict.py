"""The verdict on an artifact: does it do what the torch model did, and can this data tell?

One pure function, :func:`judge`, used by ``export`` (parity at export time) and ``validate``
(on the device), so the two never disagree on the same data. It compares an artifact's
*paired* per-image outputs with the torch reference's outputs on the same images, and its
metrics with the reference metrics:

- **output difference**: the relative raw score difference (largest over the images) and the
  99th percentile of the relative anomaly-map difference (both relative to the reference's
  largest value); the largest map difference is recorded too, not judged: a handful of pixels
  where the reference is near zero says nothing of the map a user sees. Each precision has its
  row (:data:`TOLERANCES`): FP32 1e-4; FP16 0.05; bf16 execution 16 of its unit roundoffs
  (16 x 2^-8 = 0.0625); INT8 16 steps of a signed 8-bit grid (16 x 2^-7 = 0.125), wide because
  its head is refitted and its outputs re-aligned on purpose (see export/BUNDLE.md);
- **decision flips**: images whose label at the bundle threshold differs from the torch
  model's (FP32 none; FP16 at most max(1, 1 %); INT8 at most max(2, 5 %)); a flip of an
  image whose torch score lies within the precision's output tolerance of the threshold is
  reported but not counted (its decision is not reproducible at that precision);
- **rank agreement** (reported): Spearman correlation of the scores and the exact number of
  normal/anomalous pairs whose order swapped (each moves image AUROC by 1 / (n0 * n1));
- **metrics** with the uncertainty of a small test set. Changing one image's output can move
  image AUROC by up to ``1 / min(n0, n1)`` (one anomalous image falling below every normal
  one, or one normal image rising above every anomalous one; the bound is exact for AUROC and
  the scale of the effect for the other metrics): :func:`one_image_share`. A metric within the
  tolerance passes; a difference larger than the tolerance plus one image's share fails; in
  between the data cannot tell a real change from one borderline image: INCONCLUSIVE, with
  the number of images of each class that would tell.

Outcome of the artifact: FAIL if any check fails, else INCONCLUSIVE if any is inconclusive,
else PASS.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from edgeanomaly.metrics import relative_diff

__all__ = ["PASS", "FAIL", "INCONCLUSIVE", "Tolerance", "TOLERANCES", "Check", "Verdict", "judge",
           "one_image_share", "sample_key", "tolerance_for", "worst", "map_difference", "UNIT_ROUNDOFF", "MAP_PERCENTILE"]

PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"
_ORDER = {PASS: 0, INCONCLUSIVE: 1, FAIL: 2}
#: Metrics are ratios of counts: 1 - 0.99 must count as 0.01, not 0.010000000000000009.
_EPS = 1e-9


@dataclass(frozen=True)
class Tolerance:
    """How far an artifact of one precision may be from the torch reference.

    Attributes:
        output_rel: largest relative raw score difference and 99th percentile of the relative
            map difference (None: reported, not judged).
        metric: largest difference of a judged metric from its reference value.
        flips_min, flips_fraction: decision flips allowed: ``max(flips_min, floor(fraction * n))``.
        judged: metrics held to ``metric`` (None: every metric both sides report).
        two_sided: also fail when a metric rises beyond ``metric`` (drift, not only loss).
    """

    output_rel: float | None
    metric: float
    flips_min: int = 0
    flips_fraction: float = 0.0
    judged: tuple[str, ...] | None = None
    two_sided: bool = True

    def allowed_flips(self, n: int) -> int:
        """Decision flips allowed on ``n`` paired images.

        >>> TOLERANCES["int8"].allowed_flips(100)
        5
        """
        return max(self.flips_min, int(math.floor(self.flips_fraction * n + 1e-9)))


#: Unit roundoff of the reduced floating point formats (half the spacing of numbers in [1, 2)).
UNIT_ROUNDOFF: dict[str, float] = {"bf16": 2.0**-8, "fp16": 2.0**-11}
#: Output tolerance of a reduced execution precision, in its unit roundoffs: an f32-accumulated
#: product of rounded operands is within a few roundoffs of the exact one, and a network stacks a
#: dozen such stages; judged at the 99th percentile of the map, not at its worst pixel.
ROUNDOFFS = 16
#: The percentile of the relative anomaly-map difference that is judged.
MAP_PERCENTILE = 99.0

#: Per artifact precision (and reduced execution precision). FP32 must reproduce torch: any
#: metric moving either way is drift. FP16 keeps the calibration, so all its metrics are judged;
#: bf16 execution too, with an output tolerance from its own unit roundoff (8 bits of mantissa
#: against FP16's 11). INT8 artifacts are re-aligned onto the bundle's calibration
#: (edgeanomaly.export._int8): their pixel operating point (PRO and F1 at the pixel threshold)
#: legitimately moves, so they are judged on the threshold-free metrics and the image decisions,
#: and only for losses. Their output difference is measured and recorded but not judged: a head
#: refitted on INT8 features (PatchCore's bank, PaDiM's Gaussians, DFM's PCA, DFKDE's KDE)
#: changes the raw scale on purpose, and a 16-step bound refused the INT8 artifact of three of the
#: five models on the synthetic metal set with 0 decision flips and AUROC within 0.02.
TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(output_rel=1e-4, metric=0.005),
    "fp16": Tolerance(output_rel=0.05, metric=0.01, flips_min=1, flips_fraction=0.01),
    "bf16": Tolerance(output_rel=ROUNDOFFS * UNIT_ROUNDOFF["bf16"], metric=0.01, flips_min=1, flips_fraction=0.01),
    "int8": Tolerance(
        output_rel=None,
        metric=0.02,
        flips_min=2,
        flips_fraction=0.05,
        judged=("image_auroc", "image_aupr", "image_f1", "pixel_auroc", "pixel_aupro", "pixel_aupimo"),
        two_sided=False,
    ),
}


def tolerance_for(artifact_precision: str, execution: str | None = None) -> str:
    """The :data:`TOLERANCES` row that judges an artifact run at an execution precision.

    An FP32 artifact run at f32 must reproduce torch (``"fp32"``). Run at a reduced floating
    point precision it computes the same graph with rounded arithmetic and is held to that
    precision's own row: ``"bf16"`` on a CPU (unit roundoff 2^-8), ``"fp16"`` for f16 on a GPU
    (2^-11, as an FP16 artifact's rounded weights). An FP16 artifact run at bf16 is held to the
    coarser bf16 row. An INT8 artifact keeps its own row at every execution precision: its
    decisions and threshold-free metrics are what is judged (its raw outputs are re-aligned).

    >>> tolerance_for("fp32", "f32"), tolerance_for("fp32", "bf16"), tolerance_for("fp32", "f16"), tolerance_for("int8", "bf16")
    ('fp32', 'bf16', 'fp16', 'int8')
    """
    if artifact_precision == "int8":
        return "int8"
    if execution == "bf16":
        return "bf16"
    if artifact_precision == "fp16" or execution not in (None, "f32"):
        return "fp16"
    return artifact_precision


@dataclass(frozen=True)
class Check:
    """One judged quantity: what was measured, the limit, the outcome and a sentence saying why."""

    name: str
    outcome: str
    value: float | None
    limit: float | None
    message: str


@dataclass(frozen=True)
class Verdict:
    """The outcome for one artifact, its checks and the (reported, not judged) rank agreement."""

    outcome: str
    checks: tuple[Check, ...]
    measures: dict[str, float | int | None] = field(default_factory=dict)

    @property
    def reasons(self) -> list[str]:
        """Messages of the checks that did not pass, failures first."""
        bad = sorted((c for c in self.checks if c.outcome != PASS), key=lambda c: -_ORDER[c.outcome])
        return [f"{c.outcome}: {c.message}" for c in bad]

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "checks": [_finite(asdict(c)) for c in self.checks],
            "measures": _finite(dict(self.measures)),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Verdict:
        return cls(d["outcome"], tuple(Check(**c) for c in d.get("checks", ())), dict(d.get("measures", {})))


def _finite(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def sample_key(split: str, defect_type: str, name: str) -> str:
    """How an image is named across export and validate: ``split/defect/file`` (MVTec reuses
    ``000.png`` in every defect folder, and dataset roots differ between machines).

    >>> sample_key("test", "crack", "000.png")
    'test/crack/000.png'
    """
    return f"{split}/{defect_type}/{name}"


def one_image_share(n_normal: int, n_anomalous: int) -> float:
    """The most one image's output can move image AUROC: ``1 / min(n_normal, n_anomalous)``.

    One anomalous image dropping below every normal image swaps ``n_normal`` of the
    ``n_normal * n_anomalous`` pairs (and symmetrically for a normal image); ``inf`` when a
    class is missing (the metric is undefined).

    >>> one_image_share(2, 8)
    0.5
    """
    smaller = min(int(n_normal), int(n_anomalous))
    return 1.0 / smaller if smaller > 0 else math.inf


def _relative(a: np.ndarray, ref: np.ndarray) -> float:
    return relative_diff(a, ref)[1]


def map_difference(maps: np.ndarray, ref_maps: np.ndarray, percentile: float = MAP_PERCENTILE) -> tuple[float, float]:
    """``(largest, percentile)`` of ``|maps - ref_maps|`` over every pixel, relative to the
    reference's largest absolute value (the scale of :func:`edgeanomaly.metrics.relative_diff`).

    >>> map_difference(np.array([[0.0, 1.0, 2.0, 4.0]]), np.array([[0.0, 1.0, 2.0, 2.0]]), 50.0)
    (1.0, 0.0)
    """
    m, r = np.asarray(maps, np.float64), np.asarray(ref_maps, np.float64)
    if m.size != r.size:
        raise ValueError(f"Expected paired maps of the reference's shape {r.shape}, got {m.shape}")
    if not r.size:
        return 0.0, 0.0
    diff = np.abs(m.reshape(r.shape) - r).reshape(-1)
    scale = float(np.max(np.abs(r)))
    scale = scale if scale > 0 else 1.0
    return float(np.max(diff)) / scale, float(np.percentile(diff, percentile)) / scale


def _swapped_pairs(scores: np.ndarray, ref: np.ndarray, labels: np.ndarray) -> int:
    """Normal/anomalous pairs ordered differently by the artifact and the reference (ties as
    their own order), counted exactly; each moves image AUROC by ``1 / (n0 * n1)``."""
    neg, pos = labels == 0, labels == 1
    if not neg.any() or not pos.any():
        return 0
    a = np.sign(scores[pos][:, None] - scores[neg][None, :])
    r = np.sign(ref[pos][:, None] - ref[neg][None, :])
    return int(np.count_nonzero(a != r))


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 2:
        return math.nan

    def ranks(x: np.ndarray) -> np.ndarray:  # average ranks of ties
        order = np.argsort(x, kind="mergesort")
        r = np.empty(x.size, np.float64)
        r[order] = np.arange(x.size, dtype=np.float64)
        _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
        sums = np.bincount(inv, weights=r)
        return sums[inv] / counts[inv]

    ra, rb = ranks(a), ranks(b)
    sa, sb = ra.std(), rb.std()
    if sa == 0 or sb == 0:
        return 1.0 if np.array_equal(ra, rb) else math.nan
    return float(np.mean((ra - ra.mean()) * (rb - rb.mean())) / (sa * sb))


def _metric_check(key: str, value: float, ref: float, tol: float, two_sided: bool, n0: int, n1: int,
                  swapped: int | None) -> Check:
    delta = value - ref
    loss = abs(delta) if two_sided else -delta
    share = one_image_share(n0, n1)
    what = f"{key} {value:.4f} differs from the reference {ref:.4f} by {delta:+.4f} (tolerance {tol:g})"
    if key == "image_auroc" and swapped is not None and n0 * n1 > 0:
        what += f"; {swapped} of {n0 * n1} normal/anomalous pairs swapped order"
    if loss <= tol + _EPS:
        return Check(key, PASS, delta, tol, what)
    if loss > tol + share + _EPS:
        return Check(key, FAIL, delta, tol, f"{what}: more than one image's share ({share:.3g}) beyond it on {n0} normal + {n1} anomalous images")
    needed = int(math.floor(1.0 / (loss - tol))) + 1
    return Check(
        key,
        INCONCLUSIVE,
        delta,
        tol,
        f"{what}: {n0} normal + {n1} anomalous images cannot tell this from one borderline image "
        f"(one image moves it by up to {share:.3g}); about {needed} images of each class would",
    )


def judge(
    precision: str,
    threshold: float,
    *,
    scores: np.ndarray,
    ref_scores: np.ndarray,
    labels: np.ndarray | None = None,
    maps: np.ndarray | None = None,
    ref_maps: np.ndarray | None = None,
    metrics: Mapping[str, float] | None = None,
    ref_metrics: Mapping[str, float] | None = None,
    n_normal: int = 0,
    n_anomalous: int = 0,
    metric_tolerance: float | None = None,
    tolerances: Mapping[str, Tolerance] = TOLERANCES,
) -> Verdict:
    """Judge an artifact against the torch reference.

    Args:
        precision: ``"fp32"``, ``"fp16"`` or ``"int8"`` (selects the :class:`Tolerance`).
        threshold: the bundle's raw image threshold (``score >= threshold`` is anomalous).
        scores, ref_scores: (N,) raw image scores of the artifact and of the torch model on
            the same N images, same order.
        labels: (N,) 0/1 ground truth of those images (for the swapped-pair count), or None.
        maps, ref_maps: (K, h, w) raw maps of the artifact and the torch model on the same
            K images (K may differ from N), or None.
        metrics, ref_metrics: the artifact's and the reference's metrics on the evaluation
            data (``edgeanomaly.metrics.evaluate_outputs`` keys); metrics missing on either
            side or undefined (NaN) are not judged.
        n_normal, n_anomalous: image counts of the evaluation data the metrics came from.
        metric_tolerance: overrides the precision's metric tolerance.

    Returns:
        A :class:`Verdict`.

    >>> v = judge("fp32", 0.5, scores=np.array([0.1, 0.9]), ref_scores=np.array([0.1, 0.9]))
    >>> v.outcome
    'PASS'
    """
    if precision not in tolerances:
        raise ValueError(f"Expected precision one of {sorted(tolerances)}, got {precision!r}")
    tol = tolerances[precision]
    s = np.asarray(scores, np.float64).reshape(-1)
    r = np.asarray(ref_scores, np.float64).reshape(-1)
    if s.shape != r.shape:
        raise ValueError(f"Expected paired scores of the reference's shape {r.shape}, got {s.shape}")
    checks: list[Check] = []
    measures: dict[str, float | int | None] = {"n_paired": int(s.size)}

    rel = _relative(s, r) if s.size else 0.0
    measures["max_rel_score_diff"] = rel
    if maps is not None and ref_maps is not None:
        measures["max_rel_map_diff"], measures["p99_rel_map_diff"] = map_difference(maps, ref_maps)
    if tol.output_rel is not None:
        for key, label in (("max_rel_score_diff", "raw score differs from the torch reference by at most"),
                           ("p99_rel_map_diff", "raw anomaly map differs from the torch reference by")):
            if key in measures:
                v = float(measures[key])  # type: ignore[arg-type]
                ok = v <= tol.output_rel
                extra = (f" at the {MAP_PERCENTILE:g}th percentile of its pixels (at most "
                         f"{float(measures['max_rel_map_diff']):.3g}, recorded, not judged)") if key == "p99_rel_map_diff" else ""
                checks.append(Check(key, PASS if ok else FAIL, v, tol.output_rel,
                                    f"{label} {v:.3g} relative{extra} (tolerance {tol.output_rel:g})"))

    flipped = (s >= threshold) != (r >= threshold)
    flips = int(np.count_nonzero(flipped))
    # A reference score within the precision's own output tolerance of the threshold has no
    # reproducible decision: such a flip is reported, not held against the artifact.
    borderline = 0
    if tol.output_rel is not None and r.size:
        band = tol.output_rel * float(np.max(np.abs(r)))
        borderline = int(np.count_nonzero(flipped & (np.abs(r - threshold) <= band)))
    counted = flips - borderline
    allowed = tol.allowed_flips(int(s.size))
    measures["decision_flips"] = flips
    measures["borderline_flips"] = borderline
    note = f" ({borderline} within the output tolerance of the threshold, not counted)" if borderline else ""
    checks.append(Check("decision_flips", PASS if counted <= allowed else FAIL, float(counted), float(allowed),
                        f"{flips} of {s.size} images change decision at the bundle threshold{note} (allowed {allowed})"))

    swapped = None
    if labels is not None:
        y = np.asarray(labels).reshape(-1)
        if y.shape != s.shape:
            raise ValueError(f"Expected {s.size} labels (one per paired score), got {y.size}")
        swapped = _swapped_pairs(s, r, y)
        measures["swapped_pairs"] = swapped
    measures["rank_spearman"] = _spearman(s, r)

    judged_metrics = tol.judged
    metric_tol = tol.metric if metric_tolerance is None else float(metric_tolerance)
    paired_counts = labels is not None and n_normal == int(np.sum(np.asarray(labels) == 0)) and n_anomalous == int(np.sum(np.asarray(labels) == 1))
    for key, ref in (ref_metrics or {}).items():
        value = (metrics or {}).get(key)
        if value is None or not (math.isfinite(ref) and math.isfinite(value)):
            continue
        if judged_metrics is not None and key not in judged_metrics:
            continue
        checks.append(_metric_check(key, float(value), float(ref), metric_tol, tol.two_sided, n_normal, n_anomalous,
                                    swapped if paired_counts else None))

    outcome = max((c.outcome for c in checks), key=_ORDER.__getitem__, default=PASS)
    return Verdict(outcome, tuple(checks), measures)


def worst(outcomes: Sequence[str]) -> str:
    """The overall outcome of several verdicts (FAIL > INCONCLUSIVE > PASS)."""
    return max(outcomes, key=_ORDER.__getitem__, default=PASS)
