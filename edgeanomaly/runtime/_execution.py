"""Which execution precision a loaded artifact runs at.

Export measures each artifact OpenVINO runs (IR, and ONNX read by OpenVINO) at every reduced
execution precision its machine can run (bf16 on a CPU whose ``OPTIMIZATION_CAPABILITIES``
list ``BF16``, f16 on a GPU) against the torch reference, with the verdict ``validate`` uses,
and records the result per artifact in the manifest (``reference.parity.<artifact>.execution_precisions``, see export/BUNDLE.md).
At load time the default is the fastest execution precision of the backend row's order for
the device (:meth:`edgeanomaly.registry.BackendSpec.execution_order`: CPU bf16 > f32, GPU
f16 > f32) that PASSED at export *and* that this device supports now; otherwise f32, with the
reason. ``exact=True`` or ``inference_precision="f32"`` forces f32. A bundle that records no
measurement (exported before they were made) keeps the backend's own policy: f32 on a CPU.

:func:`choose_execution` is the decision, a pure function of its inputs; :func:`resolve_execution`
gathers those inputs for :func:`edgeanomaly.runtime.load`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

from edgeanomaly.errors import BackendUnavailableError, ConfigError
from edgeanomaly.judging import PASS
from edgeanomaly.registry import EXECUTION_CAPABILITIES, backends, measured_release, release_keys

__all__ = [
    "NOT_MEASURED",
    "EXECUTION_CAPABILITIES",
    "ExecutionChoice",
    "choose_execution",
    "device_capabilities",
    "device_description",
    "execution_record",
    "resolve_execution",
]

#: Outcome of an execution precision that export could not run on its machine.
NOT_MEASURED = "NOT_MEASURED"

#: Key of a ``reference.parity`` entry that holds the export's execution measurements.
RECORD_KEY = "execution_precisions"


@dataclass(frozen=True)
class ExecutionChoice:
    """The execution precision a Detector runs at, why, and what export measured for it.

    Attributes:
        requested: asked of the backend (``"f32"``, ``"bf16"``, ``"f16"``), or None: the
            backend's own policy (a bundle without measurements; backends without a choice).
        reason: one sentence saying why.
        precision: the execution precision the backend reports it runs (set once loaded).
        measured: the artifact's export record (precision -> measurement), or None.
        parity: for a backend that makes no choice (ONNX Runtime runs the graph's own types):
            the artifact's parity entry of the export; its drift is claimed only where export
            ran it as the loaded backend runs it (the same ``precision`` description, provider
            included: :meth:`loaded`).
    """

    requested: str | None
    reason: str
    precision: str | None = None
    measured: Mapping[str, Any] | None = field(default=None, repr=False)
    parity: Mapping[str, Any] | None = field(default=None, repr=False)

    @property
    def drift(self) -> dict[str, Any] | None:
        """What export measured for :attr:`precision` on this artifact (None: not recorded)."""
        if self.parity is not None:
            return _parity_drift(self.parity)
        if not self.measured or self.precision is None:
            return None
        entry = self.measured.get(self.precision)
        return dict(entry) if isinstance(entry, Mapping) else None

    def loaded(self, engine: Any) -> ExecutionChoice:
        """This choice with the precision the loaded backend reports (``execution_precision``),
        and the export's parity run kept only if it ran the artifact as ``engine`` does."""
        same = self.parity is not None and self.parity.get("execution") == getattr(engine, "precision", None)
        return replace(self, precision=getattr(engine, "execution_precision", None) or self.requested,
                       parity=self.parity if same else None)

    def to_dict(self) -> dict[str, Any]:
        """``{"precision", "requested", "reason", "export_drift"}`` for ``info()``, JSON and reports."""
        drift = self.drift
        keep = ("outcome", "max_rel_diff", "max_rel_score_diff", "max_rel_map_diff", "p99_rel_map_diff", "decision_flips", "swapped_pairs",
                "metric_deltas", "tolerance", "device", "device_name", *release_keys(), "reason")
        return {
            "precision": self.precision,
            "requested": self.requested,
            "reason": self.reason,
            "export_drift": None if drift is None else {k: drift[k] for k in keep if k in drift},
        }


def _parity_drift(parity: Mapping[str, Any]) -> dict[str, Any] | None:
    """The export's parity run of an artifact as a drift entry (outcome, worst relative
    difference, decision flips), or None when it lacks them (a bundle before verdicts)."""
    verdict = parity.get("verdict")
    score, amap = parity.get("max_rel_score_diff"), parity.get("max_rel_map_diff")
    if not isinstance(verdict, Mapping) or verdict.get("outcome") is None or score is None:
        return None
    return {"outcome": verdict["outcome"], "max_rel_diff": max(score, amap if amap is not None else 0.0),
            "max_rel_score_diff": score, "max_rel_map_diff": amap, "decision_flips": parity.get("label_flips"),
            "reason": f"the parity run at export, which ran it as here ({parity.get('execution')})"}


def _describe(entry: Mapping[str, Any] | None) -> str:
    if not entry:
        return "not measured at export"
    outcome = entry.get("outcome")
    if outcome == NOT_MEASURED:
        return f"not measured at export ({entry.get('reason', 'no reason recorded')})"
    return f"{outcome} at export"


def choose_execution(
    order: Sequence[str],
    capabilities: Sequence[str] | None,
    measured: Mapping[str, Any] | None,
    *,
    family: str = "CPU",
    requested: str | None = None,
    exact: bool = False,
    here: Mapping[str, str] | None = None,
) -> ExecutionChoice:
    """Decide the execution precision; a pure function of its inputs.

    Args:
        order: the backend row's execution precisions for the device family, fastest first
            (``("bf16", "f32")`` on a CPU); empty: the backend has no choice to make here.
        capabilities: the device's ``OPTIMIZATION_CAPABILITIES`` now (None: not reported).
        measured: the artifact's export record, precision -> ``{"outcome", ...}``, or None
            for a bundle exported before the measurements were made.
        family: device family, for the messages.
        requested: an explicit ``inference_precision`` (honoured as asked).
        exact: force f32.
        here: :func:`device_description` of the device now (``device_name``, the release),
            or None when it cannot be told. A reduced precision is trusted only where it was
            measured: the same device name and the same OpenVINO release. bf16 kernels differ
            between CPU kinds (AMX, AVX512-BF16) and releases; a PASS on one says nothing about
            another (openvinotoolkit/openvino#38256: bf16 MatMul output corrupted on
            AVX512-BF16 CPUs without AMX, OpenVINO 2026.4.0).

    >>> measured = {"f32": {"outcome": "PASS"}, "bf16": {"outcome": "PASS", "device_name": "X", "openvino": "1"}}
    >>> choose_execution(("bf16", "f32"), ["FP32", "BF16", "INT8"], measured, here={"device_name": "X", "openvino": "1"}).requested
    'bf16'
    >>> choose_execution(("bf16", "f32"), ["FP32", "INT8"], measured).reason
    'f32: bf16 passed at export, but this CPU lacks BF16 (capabilities FP32, INT8)'
    """
    if exact and requested not in (None, "f32"):
        raise ConfigError(f"exact=True forces f32 execution, but inference_precision={requested!r} was asked; give one of them")
    record = dict(measured) if measured else None
    if exact or requested == "f32":
        return ExecutionChoice("f32", "f32 forced (exact)" if exact else "f32 as asked", measured=record)
    if requested is not None:
        return ExecutionChoice(requested, f"{requested} as asked ({_describe((record or {}).get(requested))})", measured=record)
    if not order:
        return ExecutionChoice(None, f"the backend's own execution precision on {family} (no choice to make)", measured=record)
    if record is None:
        return ExecutionChoice(None, "the bundle records no execution measurements (exported before they were made): "
                                     "the backend's default, f32 on a CPU", measured=None)
    notes: list[str] = []
    for precision in order:
        if precision == "f32":
            break
        entry = record.get(precision)
        if not entry or entry.get("outcome") != PASS:
            notes.append(f"{precision} {_describe(entry)}")
            continue
        needed = EXECUTION_CAPABILITIES[precision]
        if capabilities is None:
            notes.append(f"{precision} passed at export, but this {family} does not report its capabilities")
            continue
        if needed not in capabilities:
            notes.append(f"{precision} passed at export, but this {family} lacks {needed} (capabilities {', '.join(capabilities)})")
            continue
        where = " ".join(str(entry[k]) for k in ("device", "device_name") if entry.get(k))
        release = measured_release(entry)
        on = f" on {where}" + (f", {release[0]} {release[1]}" if release else "") if where else ""
        mismatch = _elsewhere(entry, here, family)
        if mismatch:
            notes.append(f"{precision} passed at export{on}, not on {mismatch}: measure it on this device kind")
            continue
        return ExecutionChoice(precision, f"{precision}: passed the verdict at export{on}, and this {family} has {needed}",
                               measured=record)
    return ExecutionChoice("f32", "f32" + (": " + "; ".join(notes) if notes else ""), measured=record)


def _elsewhere(entry: Mapping[str, Any], here: Mapping[str, str] | None, family: str) -> str:
    """'' when ``entry`` was measured on this device kind and backend release, else what differs."""
    now = measured_release(here) if here else None
    if not here or not here.get("device_name") or now is None:
        return f"this {family} (this {family} could not be identified)"
    differs = []
    if str(entry.get("device_name", "")) != str(here["device_name"]):
        differs.append(str(here["device_name"]))
    then = measured_release(entry)
    if then is None or then[0] != now[0] or _release(then[1]) != _release(now[1]):
        differs.append(f"{now[0]} {_release(now[1])}")
    return ", ".join(differs)


def _release(version: Any) -> str:
    """``2026.4.1`` of ``2026.4.1-22982-e213a147257-releases/2026/4``."""
    return str(version or "").split("-")[0]


def _describer(device: str) -> Any:
    """The first installed backend row that reports device facts of ``device`` (None: none)."""
    return next((b for b in backends() if b.device_facts is not None and b.installed() and b.knows(device)), None)


def _facts(device: str) -> dict[str, Any] | None:
    """What the first installed backend row that reports device facts says of ``device``."""
    row = _describer(device)
    return row.facts(device) if row is not None else None


def device_capabilities(device: str) -> list[str] | None:
    """The device's capabilities (:data:`~edgeanomaly.registry.EXECUTION_CAPABILITIES` names,
    e.g. ``['FP32', 'INT8', 'BIN', 'EXPORT_IMPORT']`` from OpenVINO's ``OPTIMIZATION_CAPABILITIES``),
    or None when the device is absent, its plugin does not say, or no backend reports them."""
    facts = _facts(device)
    return None if facts is None else facts.get("capabilities")


def device_description(device: str) -> dict[str, str]:
    """``{"device", "device_name", <backend row name>: release}``: what a measurement was made on,
    e.g. ``{"device": "CPU", "device_name": "AMD EPYC ...", "openvino": "2026.4.1-..."}``."""
    row = _describer(device)
    if row is None:
        raise BackendUnavailableError(f"No installed backend describes device {device!r} "
                                      f"(these can, once installed: {', '.join(release_keys()) or 'none registered'})")
    facts = row.facts(device)
    return {"device": device, "device_name": str(facts.get("device_name", "")), row.name: str(facts.get("release", ""))}


def execution_record(manifest: Any, artifact_name: str) -> dict[str, Any] | None:
    """The export's execution measurements of one artifact, or None when the bundle has none."""
    parity = (getattr(manifest, "reference", None) or {}).get("parity", {}).get(artifact_name)
    record = parity.get(RECORD_KEY) if isinstance(parity, Mapping) else None
    return dict(record) if isinstance(record, Mapping) else None


def resolve_execution(spec: Any, artifact: Any, manifest: Any, device: str, requested: str | None, exact: bool) -> ExecutionChoice:
    """The :class:`ExecutionChoice` for ``artifact`` on backend row ``spec`` and ``device``.

    A backend that takes no ``inference_precision`` runs its own precision (ONNX Runtime: the
    graph's types; a server: whatever it runs); ``exact`` then changes nothing and says so.
    """
    if "inference_precision" not in spec.options:
        if exact and requested not in (None, "f32"):
            choose_execution((), None, None, requested=requested, exact=True)  # raises: a contradiction
        # ``requested`` is passed on, so load() refuses it as a setting this backend does not take.
        parity = (getattr(manifest, "reference", None) or {}).get("parity", {}).get(getattr(artifact, "name", None))
        return ExecutionChoice(requested, f"the {spec.name} backend runs the artifact's own precision (f32 for fp32 graphs)",
                               parity=parity if isinstance(parity, Mapping) else None)
    order = spec.execution_order(device) if artifact is not None else ()
    measured = execution_record(manifest, artifact.name) if artifact is not None else None
    family = spec.family(device)
    needs_capabilities = requested is None and not exact and measured is not None and any(
        p != "f32" and (measured.get(p) or {}).get("outcome") == PASS for p in order)
    capabilities = device_capabilities(device.upper()) if needs_capabilities else None
    here = _identify(device.upper()) if needs_capabilities else None
    choice = choose_execution(order, capabilities, measured, family=family, requested=requested, exact=exact, here=here)
    if measured is None and choice.requested is None and order and _has_records(manifest):
        # A bundle with measurements, but not of this artifact: exported before export measured
        # OpenVINO reading the ONNX file too (it measured the IR artifacts only).
        choice = replace(choice, reason=f"export did not measure the execution precisions of {artifact.name} "
                                        f"(the bundle predates measuring ONNX files on OpenVINO): the backend's default, f32 on a CPU")
    return choice


def _identify(device: str) -> dict[str, str] | None:
    try:
        return device_description(device)
    except (RuntimeError, ImportError, BackendUnavailableError):
        return None


def _has_records(manifest: Any) -> bool:
    parity = (getattr(manifest, "reference", None) or {}).get("parity", {})
    return any(isinstance(p, Mapping) and RECORD_KEY in p for p in parity.values())
