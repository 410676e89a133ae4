"""Backend and format knowledge lives in the registry rows and the backends (issue 21): a module of
another layer that compares with, or defaults to, a literal ``"openvino"`` or ``"onnx"`` goes
stale when a row changes. This scan finds every string constant (docstrings and doctests are
prose, not code, and are left out) equal to a registered backend or format name."""

from __future__ import annotations

import ast
from pathlib import Path

from edgeanomaly.registry import backend_names, format_names

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "edgeanomaly"

#: Where naming them is the job: the rows, the backends, the format writers, and the table of
#: optional Python packages (``require("openvino")`` names a package to install).
OWNERS = {
    "edgeanomaly/registry.py",
    "edgeanomaly/_optional.py",
    "edgeanomaly/export/_graphs.py",
    "edgeanomaly/export/_int8.py",
}
OWNER_DIRS = ("edgeanomaly/runtime/_backends/",)

#: What is left, each with why; the scan fails if any other place appears, or one of these grows.
#: Empty since the deploy targets became registry rows, a measurement's backend release is read
#: through ``registry.measured_release`` and export's INT8 backend is named by its writer module.
KNOWN: dict[str, tuple[int, str]] = {}


def literals(path: Path, names: set[str]) -> list[int]:
    """Line numbers of string constants in ``path`` equal to one of ``names``, docstrings left out."""
    tree = ast.parse(path.read_text(), str(path))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return [n.lineno for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in names and id(n) not in docstrings]


def found() -> dict[str, list[int]]:
    names = set(backend_names()) | set(format_names())
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if rel in OWNERS or rel.startswith(OWNER_DIRS):
            continue
        lines = literals(path, names)
        if lines:
            out[rel] = lines
    return out


def test_backend_and_format_names_stay_in_their_rows() -> None:
    problems = []
    for rel, lines in found().items():
        allowed = KNOWN.get(rel, (0, ""))[0]
        if len(lines) > allowed:
            problems.append(f"{rel}: lines {lines} name a backend or format ({len(lines)}, known {allowed})")
    assert not problems, "\n".join(problems)


def test_the_scan_sees_literals_and_not_prose(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text('"""Runs on "openvino"."""\n\ndef f(b="openvino"):\n    """onnx"""\n    return b == "onnx" or "ONNX file"\n')
    assert literals(probe, {"openvino", "onnx"}) == [3, 5]
