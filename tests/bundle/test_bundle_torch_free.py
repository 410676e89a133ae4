"""edgeanomaly.bundle runs on a device without torch, onnx or openvino."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

_SCRIPT = textwrap.dedent(
    """
    import sys

    BLOCKED = ("torch", "onnx", "openvino", "onnxruntime", "nncf")

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, Blocker())
    sys.path.insert(0, sys.argv[1])

    import edgeanomaly.bundle as eb
    from bundle_fakes import files, manifest

    out = eb.write_bundle(sys.argv[2] + "/b.zip", manifest(), files())
    with eb.read_bundle(out) as bundle:
        eb.describe_bundle(bundle)
    assert eb.verify_bundle(out) == []
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    assert not loaded, loaded
    print("ok")
    """
)


def test_bundle_works_with_torch_blocked(tmp_path: Path) -> None:
    here = Path(__file__).parent
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(here), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_importing_the_package_does_not_import_opencv() -> None:
    code = "import sys, edgeanomaly.bundle; print('cv2' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
