"""`serve` and `deploy` on the command line: help with examples, kserve imported only when serving."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> subprocess.CompletedProcess:
    blocker = textwrap.dedent(
        """
        import sys
        class _Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {"kserve", "torch", "tritonclient"}:
                    raise ImportError(f"{name} is blocked by the test")
                return None
        sys.meta_path.insert(0, _Block())
        """
    )
    return subprocess.run([sys.executable, "-c", blocker + textwrap.dedent(code)], capture_output=True, text=True, timeout=120)


def test_help_has_examples_and_imports_no_kserve():
    proc = _run(
        """
        from click.testing import CliRunner
        from edgeanomaly.cli import main
        top = CliRunner().invoke(main, ["--help"]).output
        assert "serve" in top and "deploy" in top, top
        for cmd in ("serve", "deploy"):
            r = CliRunner().invoke(main, [cmd, "--help"])
            assert r.exit_code == 0 and "Example" in r.output, r.output
        assert not {"kserve", "fastapi", "tritonclient"} & {m.split(".")[0] for m in sys.modules}
        """
    )
    assert proc.returncode == 0, proc.stderr


def test_serve_without_kserve_names_the_extra(tmp_path):
    proc = _run(
        f"""
        from edgeanomaly.serve import serve
        from edgeanomaly.errors import MissingDependencyError
        try:
            serve([{str(tmp_path)!r}])
        except MissingDependencyError as exc:
            assert 'edgeanomaly[serve]' in str(exc), exc
        else:
            raise SystemExit("no error")
        """
    )
    assert proc.returncode == 0, proc.stderr


def test_remote_flags_need_each_other(tmp_path):
    from click.testing import CliRunner

    from edgeanomaly.cli import main

    bundle = tmp_path / "b"
    bundle.mkdir()
    r = CliRunner().invoke(main, ["predict", str(bundle), str(tmp_path), "--backend", "remote"])
    assert r.exit_code == 2 and "--backend remote needs --url" in r.output
    r = CliRunner().invoke(main, ["predict", str(bundle), str(tmp_path), "--url", "http://127.0.0.1:1"])
    assert r.exit_code == 2 and "go with --backend remote" in r.output
