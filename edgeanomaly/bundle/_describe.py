"""Human-readable description of a bundle: the text ``edgeanomaly info`` prints."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from edgeanomaly.bundle._bundle import Bundle
from edgeanomaly.bundle._hashing import MANIFEST_SHA256_KEY, content_sha256
from edgeanomaly.bundle._manifest import Manifest
from edgeanomaly.bundle._schema import MANIFEST_NAME
from edgeanomaly.bundle._signing import verify_signature
from edgeanomaly.bundle._verify import FileStatus, check_files
from edgeanomaly.errors import SignatureError
from edgeanomaly.registry import backends_for

__all__ = ["describe_bundle", "format_bytes"]

_INDENT = " " * 13


def format_bytes(n: int) -> str:
    """Size with binary units.

    >>> format_bytes(512), format_bytes(3 * 1024 * 1024)
    ('512 B', '3.0 MiB')
    """
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _num(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "undefined"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _manifest_status(bundle: Bundle) -> str:
    if bundle.verified:
        return "ok"
    try:
        document = json.loads((bundle.root / MANIFEST_NAME).read_text("utf-8"))
        return "ok" if content_sha256(document) == document.get(MANIFEST_SHA256_KEY) else "MODIFIED"
    except (OSError, ValueError):
        return "unreadable"


def _statuses(bundle: Bundle, verify: bool) -> dict[str, FileStatus]:
    if not verify:
        return {f.path: FileStatus(f.path, "", "ok") for f in bundle.manifest.files()}
    return {s.path: s for s in check_files(bundle.root, bundle.manifest)}


def _model_lines(m: Manifest) -> list[str]:
    info = m.model_info
    pretrained = "pretrained" if info["pretrained"] == "true" else "not pretrained"
    extra = sorted(k for k in info if k not in ("model", "task", "backbone", "layers", "input_height",
                                                "input_width", "edgeanomaly_version", "created_utc",
                                                "pretrained", "weights_source", "schema_version",
                                                "preprocessing", "normalization"))
    lines = [
        f"Model        {info['model']} ({info['task']})",
        f"Backbone     {info['backbone']}, layers {info['layers']}, {pretrained} (weights: {info['weights_source']})",
    ]
    if extra:
        lines.append("Model info   " + ", ".join(f"{k}={info[k]}" for k in extra))
    return lines


def _normalization(value: str) -> str:
    if value == "imagenet-in-graph":
        return "ImageNet mean/std applied inside the graph"
    return f"normalization: {value}"


def _contract_lines(m: Manifest) -> list[str]:
    inp = m.input
    batch = "dynamic batch" if m.static_batch is None else f"static batch {m.static_batch}"
    lo, hi = inp["value_range"]
    pre = m.preprocessing
    h, w = pre["image_size"]
    crop = f", center crop {pre['center_crop'][0]}x{pre['center_crop'][1]}" if pre["center_crop"] else ", no crop"
    outputs = "; ".join(f"{o['name']} {o['shape']}" for o in m.outputs)
    return [
        f"Input        {inp['name']} {inp['dtype']} {inp['shape']} {inp['layout']} {inp['color']} in "
        f"[{lo:g}, {hi:g}], {batch}; {_normalization(m.model_info['normalization'])}",
        f"Preprocess   resize to {h}x{w} (interpolation {pre['interpolation']}){crop}",
        f"Outputs      {outputs} (raw)",
    ]


def _calibration_lines(m: Manifest) -> list[str]:
    cal = m.calibration
    src = cal.source
    method = f"quantile {cal.quantile:g}" if cal.method == "quantile" else cal.method
    on = f"split '{src['split']}'" if src["split"] else "unspecified split"
    data = f" of {src['data']}" if src["data"] else ""
    lines = [
        f"Calibration  {method} on {on}{data}: {src['n_images']} images ({src['n_normal']} normal, "
        f"{src['n_anomalous']} anomalous), {cal.created_utc}",
        f"{_INDENT}image threshold {_num(cal.image_threshold)}, range [{_num(cal.image_min)}, {_num(cal.image_max)}]",
    ]
    if cal.has_pixel:
        lines.append(
            f"{_INDENT}pixel threshold {_num(cal.pixel_threshold)}, range [{_num(cal.pixel_min)}, {_num(cal.pixel_max)}]"
        )
    lines.append(f"{_INDENT}normalised = clip((raw - threshold) / (max - min) + 0.5, 0, 1); anomalous when raw >= threshold")
    if cal.history:
        last = cal.history[-1]
        n = len(cal.history)
        lines.append(
            f"{_INDENT}history: {n} earlier calibration{'s' if n > 1 else ''} (latest: {last['method']}, "
            f"image threshold {_num(last['image_threshold'])}, {last['created_utc']})"
        )
    return lines


def _artifact_lines(m: Manifest, statuses: dict[str, FileStatus]) -> list[str]:
    rows = [("name", "format", "precision", "batch", "backends", "size", "path", "checksum")]
    for a in m.artifacts:
        bad = [statuses[f.path] for f in a.files if f.path in statuses and not statuses[f.path].ok]
        check = "ok" if not bad else ", ".join(f"{s.path}: {s.status.upper()}" for s in bad)
        batch = "dynamic" if a.static_batch is None else str(a.static_batch)
        # Who can run it, from the registry (the same table load() chooses from).
        runs = ",".join(b.name for b in backends_for(a.format)) or "-"
        rows.append((a.name, a.format, a.precision, batch, runs, format_bytes(a.bytes), a.path, check))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for i, row in enumerate(rows):
        text = "  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1]
        lines.append(("Artifacts    " if i == 0 else _INDENT) + text)
    return lines


def _reference_lines(bundle: Bundle, statuses: dict[str, FileStatus]) -> list[str]:
    ref = bundle.manifest.reference
    data = f" from {ref['data']}" if ref["data"] else ""
    if ref["file"] is None:
        lines = [f"Reference    no reference outputs file{data}"]
    else:
        status = statuses.get(ref["file"].path)
        check = "ok" if status is None or status.ok else status.status.upper()
        count = ""
        if status is None or status.ok:
            try:
                with np.load(bundle.root / ref["file"].path, allow_pickle=False) as arrays:
                    key = "pred_score" if "pred_score" in arrays.files else arrays.files[0]
                    count = f"{arrays[key].shape[0]} images, "
            except (OSError, ValueError, IndexError):
                count = "unreadable, "
        lines = [f"Reference    {ref['file'].path} ({count}{format_bytes(ref['file'].bytes)}, {check}){data}"]
    if ref["metrics"]:
        lines.append(f"{_INDENT}metrics: " + ", ".join(f"{k} {_num(v)}" for k, v in ref["metrics"].items()))
    for name, values in ref["parity"].items():
        lines += _parity_lines(name, values)
        executions = values.get("execution_precisions")
        if executions:
            lines.append(f"{_INDENT}execution precisions {name} (OpenVINO, measured at export): " + "; ".join(
                f"{p} {e['outcome']} ({e['reason']})" if e.get("outcome") == "NOT_MEASURED"
                else f"{p} {e['outcome']} (max rel diff {_num(e.get('max_rel_diff'))}, {e.get('decision_flips')} flips, {e.get('device')})"
                for p, e in executions.items()))
    return lines


def _signature_line(bundle: Bundle, trust: Any) -> str:
    if bundle.signature_problem is not None:
        return f"Signature    UNREADABLE: {bundle.signature_problem}"
    sig = bundle.signature
    if trust is not None:
        try:
            checked = verify_signature(bundle.root, trust, str(bundle.source))
        except SignatureError as exc:
            return f"Signature    REFUSED under the trusted keys: {exc}"
        return f"Signature    valid: {checked.describe()}"
    if sig is None:
        return "Signature    none (unsigned; edgeanomaly sign BUNDLE --key KEY signs it)"
    return f"Signature    {sig.describe()}; not checked (no trusted keys given: --trust KEYS)"


def _parity_lines(name: str, values: dict[str, Any]) -> list[str]:
    """One line of numbers per artifact, then the verdict: what failed or could not be judged,
    one message a line (the passed checks are counted, not printed; ``info --json`` has all)."""
    flat = ", ".join(f"{k} {_num(v)}" for k, v in values.items() if not isinstance(v, (dict, list)))
    lines = [f"{_INDENT}parity {name}: {flat}"]
    verdict = values.get("verdict")
    if isinstance(verdict, dict):
        checks = [c for c in verdict.get("checks", []) if isinstance(c, dict)]
        passed = sum(c.get("outcome") == "PASS" for c in checks)
        lines.append(f"{_INDENT}  verdict {verdict.get('outcome', '?')}: {passed} of {len(checks)} checks pass")
        lines += [f"{_INDENT}    {c.get('outcome')}: {c.get('message', c.get('name'))}" for c in checks if c.get("outcome") != "PASS"]
    for attempt in values.get("rejected_attempts", []) or []:
        lines.append(f"{_INDENT}  rejected before: {attempt}")
    return lines


def describe_bundle(bundle: Bundle, verify: bool | None = None, *, trust: Any = None) -> str:
    """The human-readable summary of a bundle that ``edgeanomaly info`` prints.

    Covers the model, task, backbone and layers, input contract, preprocessing, outputs,
    calibration with provenance and history, the artifacts (format, precision, batch,
    size, checksum status), reference metrics and parity.

    Args:
        bundle: an opened bundle.
        verify: hash the files for the checksum column. ``None`` (default) hashes only when
            the bundle was read with ``verify=False``; a verified bundle shows ``ok``.
        trust: trusted keys (:class:`~edgeanomaly.bundle.TrustedKeys`) to check the signature
            against; without them the signature line says by which key it is signed, unchecked.

    >>> with read_bundle("out/patchcore") as b:       # doctest: +SKIP
    ...     print(describe_bundle(b))
    """
    m = bundle.manifest
    verify = (not bundle.verified) if verify is None else verify
    statuses = _statuses(bundle, verify)
    manifest_status = _manifest_status(bundle)
    info = m.model_info
    lines = [
        f"Bundle       {bundle.source}",
        f"{_INDENT}schema {m.schema_version}, created {m.created_utc} with edgeanomaly {info['edgeanomaly_version']}",
        *_model_lines(m),
        *_contract_lines(m),
        *_calibration_lines(m),
        *_artifact_lines(m, statuses),
        *_reference_lines(bundle, statuses),
        _signature_line(bundle, trust),
    ]
    problems = [s for s in statuses.values() if not s.ok]
    n_files = len(statuses)
    if not problems and manifest_status == "ok":
        lines.append(f"Checksums    ok: {MANIFEST_NAME} and {n_files} file{'s' if n_files != 1 else ''} verified")
    else:
        lines.append(f"Checksums    FAILED ({MANIFEST_NAME}: {manifest_status})")
        lines.extend(f"{_INDENT}{s.problem}" for s in problems)
    return "\n".join(lines)
