"""Layers meet only through public APIs (an AST scan of every import in the package and examples).

Rules (docs/ARCHITECTURE.md):
- no module imports another layer's private module: ``edgeanomaly.X._y`` (or ``from
  edgeanomaly.X import _y``) only from inside ``edgeanomaly.X``. Top-level private helpers
  (``edgeanomaly._optional``, ``_lazy``, ``_validation``) are shared by every layer;
- the training side (``models``, ``components``) imports nothing from ``runtime``,
  ``export``, ``cli``, ``tooling`` or ``reports``; it judges by ``judging``, as the device does;
- every layer imports only the layers its row of the table allows (the torch-free layers
  never import the layers above them).
Examples are held to the public API only.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "edgeanomaly"

#: layer -> the other layers it may import (docs/ARCHITECTURE.md's table); ``errors`` and the
#: top-level private helpers are open to all.
TORCH_FREE = {"registry", "recipes", "data", "metrics", "bundle", "judging", "runtime", "tooling", "reports", "serve"}
ALLOWED: dict[str, set[str]] = {
    "registry": set(),
    "recipes": set(),
    "data": set(),
    "metrics": {"data"},
    "bundle": {"data", "registry"},
    "judging": {"data", "metrics", "bundle"},
    "runtime": {"data", "bundle", "registry", "judging"},
    "tooling": {"data", "metrics", "bundle", "registry", "judging", "runtime"},
    "reports": {"data", "metrics", "bundle", "registry", "judging", "runtime", "tooling"},
    "serve": {"data", "bundle", "registry", "runtime"},
    "components": {"data"},
    "models": {"components", "data", "metrics", "bundle", "judging"},
    "export": TORCH_FREE | {"components", "models"},
    "frontdoor": TORCH_FREE | {"models", "export"},  # models and export inside the training calls only
    "cli": TORCH_FREE | {"components", "models", "export", "frontdoor"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[int, str, tuple[str, ...]]]:
    """(line, module imported, names imported from it) for every import in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module, tuple(a.name for a in node.names)))
    return found


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "edgeanomaly" else None


def violations(path: Path, public_only: bool = False, module: str | None = None) -> list[str]:
    """Problems in one file; ``module`` names it when it is not under the package (the self-test)."""
    here = module or (_module_name(path) if path.is_relative_to(PACKAGE) else "")
    own = _layer(here)
    out = []
    for line, imported, names in imports(path):
        layer = _layer(imported)
        if layer is None:
            continue
        where = f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path}:{line}"
        targets = [imported] + [f"{imported}.{n}" for n in names if n.startswith("_")]
        for target in targets:
            tparts = target.split(".")
            private = any(p.startswith("_") for p in tparts[2:])
            shared_helper = tparts[1].startswith("_") and not public_only
            if (private or (public_only and tparts[1].startswith("_"))) and not shared_helper and layer != own:
                out.append(f"{where} imports private {target}")
        if own in ALLOWED and layer != own and layer not in ALLOWED[own] and layer != "errors" and not layer.startswith("_"):
            out.append(f"{where}: {own} imports {imported} (layer {layer})")
    return out


def test_no_private_cross_layer_imports_and_layers_point_down() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 50
    problems = [v for f in files for v in violations(f)]
    assert not problems, "\n".join(problems)


def test_examples_use_public_names_only() -> None:
    files = sorted((REPO / "examples").glob("*.py"))
    assert files
    problems = [v for f in files for v in violations(f, public_only=True)]
    assert not problems, "\n".join(problems)


def test_the_scan_sees_what_it_should(tmp_path: Path) -> None:
    """The checker itself: it flags each kind of forbidden import (so the tests above can fail)."""
    fake = tmp_path / "_scan_probe.py"
    code = (
        "from edgeanomaly.runtime._calibration import x\n"
        "from edgeanomaly.runtime import load\n"
        "from edgeanomaly.data import _io\n"
        "from edgeanomaly.tooling import validate_bundle\n"
        "from edgeanomaly.judging import compute_calibration\n"
        "from edgeanomaly._optional import require\n"
        "import edgeanomaly.models._base\n"
    )
    fake.write_text(code)
    found = violations(fake, module="edgeanomaly.models._scan_probe")
    # runtime._calibration (private + layer), runtime, data._io, tooling; judging is allowed
    assert len(found) == 5, found
    assert sum("private" in f for f in found) == 2


def test_the_rules_import_no_runtime_and_no_tooling() -> None:
    """``judging`` sits below the runtime: fitting judges by it without loading a backend."""
    code = (
        "import sys\n"
        "from edgeanomaly.judging import compute_calibration\n"
        "compute_calibration([1.0, 2.0, 3.0], [0, 0, 1])\n"
        "assert not [m for m in sys.modules if m.startswith(('edgeanomaly.runtime', 'edgeanomaly.tooling'))], sorted(sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
