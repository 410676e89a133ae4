"""Signed bundles on a server (issue 24): `serve --trust` refuses an unsigned bundle at start-up
and names it; a signed one serves; `deploy` carries the signature (and, for KServe, the keys).

On a real exported bundle (DFM), so the graphs carry the model_info the exporter writes."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _serving import free_port, has, start_server, stop_server
from click.testing import CliRunner

from edgeanomaly.bundle import SIGNATURE_NAME, generate_keypair, read_bundle, sign_bundle, verify_bundle

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def keypair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return generate_keypair(tmp_path_factory.mktemp("keys") / "factory", "factory")


@pytest.fixture()
def signed_copy(serve_bundle: Path, tmp_path: Path, keypair: tuple[Path, Path]) -> Path:
    copy = Path(shutil.copytree(serve_bundle, tmp_path / "signed.bundle"))
    sign_bundle(copy, keypair[0])
    return copy


def test_real_export_graphs_match_their_manifest(serve_bundle: Path) -> None:
    assert verify_bundle(serve_bundle, graphs=True) == []


@pytest.mark.skipif(not has("kserve"), reason="needs kserve ([serve] extra)")
def test_serve_trust_refuses_an_unsigned_bundle_at_startup(serve_bundle: Path, signed_copy: Path, tmp_path: Path,
                                                           keypair: tuple[Path, Path]) -> None:
    unsigned = Path(shutil.copytree(serve_bundle, tmp_path / "unsigned.bundle"))
    proc = subprocess.run(
        [sys.executable, "-m", "edgeanomaly.cli", "serve", str(signed_copy), str(unsigned), "--trust", str(keypair[1].parent),
         "--http-port", str(free_port()), "--grpc-port", "0"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "refusing to start: 1 of 2 bundle(s)" in proc.stderr and f"Bundle {unsigned} is not signed" in proc.stderr, proc.stderr
    assert str(signed_copy) not in proc.stderr  # only the refused bundle is named
    assert "Traceback" not in proc.stderr


@pytest.mark.skipif(not has("kserve"), reason="needs kserve ([serve] extra)")
def test_serve_trust_serves_a_signed_bundle(signed_copy: Path, tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    server = start_server(signed_copy, tmp_path, "--trust", str(keypair[1]))
    try:
        status, body = server.get("/v2/health/ready")
        assert status == 200, body
    finally:
        stop_server(server)


def _deploy(tmp_path: Path, bundle: Path, target: str, *extra: str):
    from edgeanomaly.cli import main

    return CliRunner().invoke(main, ["deploy", str(bundle), "--target", target, "--out", str(tmp_path / target),
                                     "--model-name", "dfm", *extra])


def test_deploy_carries_the_signature(signed_copy: Path, tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    for target in ("triton", "ovms"):
        r = _deploy(tmp_path, signed_copy, target, "--trust", str(keypair[1]))
        assert r.exit_code == 0, r.output
        assert (tmp_path / target / "dfm" / SIGNATURE_NAME).read_bytes() == (signed_copy / SIGNATURE_NAME).read_bytes()


@pytest.mark.skipif(not has("yaml"), reason="needs pyyaml ([serve] extra)")
def test_deploy_kserve_image_verifies_with_the_trusted_keys(signed_copy: Path, serve_bundle: Path, tmp_path: Path,
                                                             keypair: tuple[Path, Path]) -> None:
    r = _deploy(tmp_path, serve_bundle, "kserve", "--trust", str(keypair[1]))
    assert r.exit_code == 1 and "is not signed" in r.output, r.output  # nothing unsigned is deployed under trust
    assert not (tmp_path / "kserve").exists()
    r = _deploy(tmp_path, signed_copy, "kserve", "--trust", str(keypair[1]))
    assert r.exit_code == 0, r.output
    out = tmp_path / "kserve"
    lines = [line.split(None, 1) for line in (out / "Dockerfile").read_text().splitlines() if line and not line.startswith("#")]
    copies = dict(shlex.split(v) for k, v in lines if k == "COPY")
    # `docker run` runs ENTRYPOINT + CMD; a pod ENTRYPOINT + the manifest's args (they replace
    # the CMD): both must serve under the image's trusted keys.
    yaml = pytest.importorskip("yaml", reason="needs pyyaml ([serve] extra)")
    (container,) = yaml.safe_load((out / "inferenceservice.yaml").read_text())["spec"]["predictor"]["containers"]
    assert json.loads(dict(lines)["ENTRYPOINT"]) == ["edgeanomaly", "serve"]
    for argv in (json.loads(dict(lines)["CMD"]), container["args"]):
        trust_in_image = argv[argv.index("--trust") + 1]
        assert copies["trust"] == trust_in_image, argv
    # What the image holds verifies with what the image trusts.
    with read_bundle(out / "bundle", trust=out / "trust") as b:
        assert b.signature.trusted_by is not None


def test_export_sign_key_writes_a_signed_bundle(serve_bundle: Path, tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    """`export --sign-key` (the serve fixture's DFM run, ONNX FP32 only, into a zip)."""
    pytest.importorskip("torch", reason="export needs the [train] extra")
    from edgeanomaly.cli import main

    run_dir = serve_bundle.parent / "dfm.run"
    out = tmp_path / "dfm.zip"
    bad = CliRunner().invoke(main, ["export", str(run_dir), "--out", str(out), "--format", "onnx",
                                    "--sign-key", str(keypair[1])])
    assert bad.exit_code == 1 and "this is a public key" in bad.output and not out.exists(), bad.output
    r = CliRunner().invoke(main, ["export", str(run_dir), "--out", str(out), "--format", "onnx", "--sign-key", str(keypair[0])])
    assert r.exit_code == 0, r.output
    assert "signed with key" in r.output
    with read_bundle(out, trust=keypair[1]) as b:
        assert b.signature.trusted_by == keypair[1]
