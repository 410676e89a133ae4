"""No function in the package over 80 code lines (issue 21): a function that long does several
things, and its parts want names. Code lines: not blank, not only a comment, not the docstring;
a function's nested functions and classes count toward it."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIMIT = 80


def code_lines(lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    doc: set[int] = set()
    first = node.body[0] if node.body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        doc = set(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    span = range(node.lineno, (node.end_lineno or node.lineno) + 1)
    return sum(1 for i in span if i not in doc and lines[i - 1].strip() and not lines[i - 1].strip().startswith("#"))


def long_functions(root: Path, limit: int = LIMIT) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text()
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text, str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = code_lines(lines, node)
                if n > limit:
                    found.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.name}: {n} code lines")
    return found


def test_no_function_over_80_code_lines() -> None:
    found = long_functions(REPO / "edgeanomaly")
    assert not found, f"functions over {LIMIT} code lines:\n" + "\n".join(found)


def test_the_counter_counts_code_not_prose(tmp_path: Path) -> None:
    """The checker itself: docstring, comments and blank lines are not counted; a long body is."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(LIMIT))  # + the def line: LIMIT + 1
    (pkg / "a.py").write_text(f'def long():\n    """Doc.\n\n    more doc\n    """\n    # a comment\n\n{body}\n')
    (pkg / "b.py").write_text("def short():\n" + "\n".join(f"    # note {i}" for i in range(200)) + "\n    return 1\n")
    found = long_functions(pkg)
    assert len(found) == 1 and "a.py:1 long: 81 code lines" in found[0], found
