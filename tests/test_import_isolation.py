"""The torch boundary: device-side layers and `edgeanomaly --help` never import torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

BLOCKER = textwrap.dedent(
    """
    import sys
    class _Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {blocked!r}:
                raise ImportError(f"{{name}} is blocked by the isolation test")
            return None
    sys.meta_path.insert(0, _Block())
    """
)


def run_blocked(code: str, blocked: tuple[str, ...] = ("torch",)) -> subprocess.CompletedProcess:
    script = BLOCKER.format(blocked=set(blocked)) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "module",
    ["edgeanomaly", "edgeanomaly.errors", "edgeanomaly.registry", "edgeanomaly.data", "edgeanomaly.metrics", "edgeanomaly.bundle",
     "edgeanomaly.judging", "edgeanomaly.runtime", "edgeanomaly.tooling", "edgeanomaly.reports", "edgeanomaly.cli", "edgeanomaly.frontdoor",
     "edgeanomaly.serve._deploy", "edgeanomaly.serve._inference", "edgeanomaly.runtime._backends._remote"],
)
def test_torch_free_layers_import_without_torch(module: str) -> None:
    proc = run_blocked(
        f"""
        import importlib
        importlib.import_module({module!r})
        assert "torch" not in sys.modules
        """
    )
    assert proc.returncode == 0, proc.stderr


def test_help_imports_no_heavy_backend() -> None:
    proc = run_blocked(
        """
        from click.testing import CliRunner
        from edgeanomaly.cli import main
        result = CliRunner().invoke(main, ["--help"])
        assert result.exit_code == 0, result.output
        assert "Commands" in result.output
        heavy = {"torch", "openvino", "onnxruntime", "onnx", "nncf"} & {m.split(".")[0] for m in sys.modules}
        assert not heavy, heavy
        """,
        blocked=("torch", "openvino", "onnxruntime", "onnx", "nncf"),
    )
    assert proc.returncode == 0, proc.stderr


def test_data_commands_run_without_torch(tmp_path) -> None:
    proc = run_blocked(
        f"""
        from click.testing import CliRunner
        from edgeanomaly.cli import main
        r = CliRunner().invoke(main, ["data", "synth", "--out", {str(tmp_path)!r}, "--category", "metal", "--n-train", "2", "--n-test", "1", "--size", "64"])
        assert r.exit_code == 0, r.output
        r = CliRunner().invoke(main, ["data", "check", {str(tmp_path / "metal")!r}])
        assert r.exit_code == 0, r.output
        assert "torch" not in sys.modules
        """
    )
    assert proc.returncode == 0, proc.stderr
