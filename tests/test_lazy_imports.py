"""The package's own imports sit at module top, where readers and tools see the structure.

An import of an ``edgeanomaly`` module inside a function is allowed only where the torch
boundary or an optional extra needs it, and the line says which in a comment
(``# torch: the training side``). The CLI's command table already imports a command's module
only when the command runs (``edgeanomaly/cli/__init__.py``), so command modules import the
torch-free layers at their top too.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "edgeanomaly"


def lazy_imports(path: Path) -> list[tuple[int, str, str]]:
    """(line, module, the line's text) for every import of an ``edgeanomaly`` module inside a function."""
    text = path.read_text()
    lines = text.splitlines()
    found = set()
    for fn in ast.walk(ast.parse(text, str(path))):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            elif isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            else:
                continue
            for module in modules:
                if module == "edgeanomaly" or module.startswith("edgeanomaly."):
                    found.add((node.lineno, module, " ".join(lines[node.lineno - 1:node.end_lineno])))
    return sorted(found)


def unexplained(path: Path) -> list[str]:
    return [f"{path.relative_to(PACKAGE.parent)}:{line}: {module}" for line, module, text in lazy_imports(path)
            if "#" not in text.split("import", 1)[1]]


def test_in_function_imports_say_why() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    problems = [p for f in files for p in unexplained(f)]
    assert not problems, "import these at module top, or say in a comment why not (torch, an extra):\n" + "\n".join(problems)


def test_the_scan_sees_an_unexplained_import(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "def f():\n"
        "    from edgeanomaly.data import read_image\n"
        "    import edgeanomaly.bundle\n"
        "    from edgeanomaly.models import fit_run  # torch: the training side\n"
        "    import os\n"
    )
    found = lazy_imports(probe)
    assert [m for _, m, _ in found] == ["edgeanomaly.data", "edgeanomaly.bundle", "edgeanomaly.models"]
    assert [t for _, _, t in found if "#" not in t.split("import", 1)[1]] == [
        "    from edgeanomaly.data import read_image", "    import edgeanomaly.bundle"]
