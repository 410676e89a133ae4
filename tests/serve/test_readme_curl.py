"""The README's curl example for the V2 infer endpoint (issue 20.15) runs as written against a
real `edgeanomaly serve`, with only the address, the model name and the image replaced."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def _curl_example() -> str:
    text = README.read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    (block,) = [b for b in blocks if b.lstrip().startswith("curl ")]
    return "\n".join(line for line in block.splitlines() if not line.startswith("#"))


def test_readme_curl_example(server, serve_bundle: Path, tmp_path: Path) -> None:
    if shutil.which("curl") is None or shutil.which("base64") is None:
        pytest.skip("needs curl and GNU base64")
    from edgeanomaly.runtime import load, served_model_name

    rng = np.random.default_rng(0)
    image = np.clip(rng.normal(128, 8, (128, 128, 3)), 0, 255).astype(np.uint8)
    assert cv2.imwrite(str(tmp_path / "part.png"), image)
    name = served_model_name(serve_bundle)
    command = _curl_example().replace("http://127.0.0.1:8080", server.url).replace("/models/pc/", f"/models/{name}/")
    r = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    answer = json.loads(r.stdout)
    outputs = {o["name"]: o for o in answer["outputs"]}
    assert answer["model_name"] == name and set(outputs) >= {"pred_score", "raw_score", "pred_label"}, answer
    with load(serve_bundle, backend="onnxruntime") as det:
        local = det.predict(tmp_path / "part.png")
    assert outputs["pred_score"]["data"][0] == pytest.approx(local.score, abs=1e-4)
    assert outputs["pred_label"]["data"][0] == bool(local.label)
