"""Signed bundles (issue 24) and the graph checked against its manifest (issue 20, item 6).

Real Ed25519 keys (the ``cryptography`` package), real toy bundles with real ONNX/OpenVINO
graphs, real backends. Each tampering a person with write access to a device can do is
refused under trusted keys, before any graph is compiled, with its own message.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import part_image, write_rgb  # at module level: a lazy import meets another folder's conftest
from _bundle_edit import resign

from edgeanomaly import registry
from edgeanomaly.bundle import (
    SIGNATURE_NAME,
    TrustedKeys,
    generate_keypair,
    graph_model_info,
    pack_bundle,
    read_bundle,
    sign_bundle,
    update_calibration,
    verify_bundle,
)
from edgeanomaly.bundle._hashing import sha256_file
from edgeanomaly.errors import (
    BadSignatureError,
    ConfigError,
    GraphMismatchError,
    SignatureError,
    UnsignedBundleError,
    UntrustedKeyError,
)
from edgeanomaly.runtime import load

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """Three key pairs, each in its own folder: {name: (private .key, public .pub)}."""
    root = tmp_path_factory.mktemp("keys")
    return {name: generate_keypair(root / name, name) for name in ("factory", "factory2027", "stranger")}


def _trust_dir(tmp_path: Path, keys: dict, *names: str) -> Path:
    folder = tmp_path / "trusted"
    folder.mkdir(exist_ok=True)
    for name in names:
        shutil.copy(keys[name][1], folder / keys[name][1].name)
    return folder


@pytest.fixture(scope="module")
def other_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another segmentation model with the same input/output contract as toy-segmentation
    (as PaDiM and PatchCore share theirs): only its model_info tells them apart."""
    from _runtime_graphs import make_bundle

    root = tmp_path_factory.mktemp("other")
    return make_bundle(root / "toy-other", "segmentation", work=root / "work", model_name="toy-other")


@pytest.fixture()
def signed(seg_bundle_copy: Path, keys: dict) -> Path:
    sign_bundle(seg_bundle_copy, keys["factory"][0])
    return seg_bundle_copy


class _CompileSpy:
    """Records every backend created (each compiles a graph); calls through to the real one."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.created: list[str] = []
        real = registry.BackendSpec.create

        def create(spec, path, *args, **kwargs):
            self.created.append(str(path))
            return real(spec, path, *args, **kwargs)

        monkeypatch.setattr(registry.BackendSpec, "create", create)


# ------------------------------------------------------------------- tampering under trust


def _raise_threshold(bundle: Path, keys: dict, toy_bundles: dict) -> None:
    resign(bundle, lambda d: d["calibration"].update(image_threshold=1000.0))


def _swap_graph(bundle: Path, keys: dict, toy_bundles: dict) -> None:
    """Another model's graph, the manifest's sha256/bytes and manifest_sha256 recomputed."""
    other = toy_bundles["toy-classification"] / "model.onnx"
    shutil.copy(other, bundle / "model.onnx")
    digest, size = sha256_file(bundle / "model.onnx")

    def edit(d: dict) -> None:
        for artifact in d["artifacts"]:
            for f in artifact["files"]:
                if f["path"] == "model.onnx":
                    f.update(sha256=digest, bytes=size)

    resign(bundle, edit)


def _signature_of_another_key(bundle: Path, keys: dict, toy_bundles: dict) -> None:
    """signature.json still names the trusted key, but its bytes were made by another one."""
    from cryptography.hazmat.primitives import serialization

    from edgeanomaly.bundle._signing import signature_payload

    document = json.loads((bundle / SIGNATURE_NAME).read_text())
    stranger = serialization.load_pem_private_key(keys["stranger"][0].read_bytes(), None)
    payload = {k: v for k, v in document.items() if k != "signature"}
    document["signature"] = base64.b64encode(stranger.sign(signature_payload(payload))).decode()
    (bundle / SIGNATURE_NAME).write_text(json.dumps(document))


def _remove_signature(bundle: Path, keys: dict, toy_bundles: dict) -> None:
    (bundle / SIGNATURE_NAME).unlink()


def _resign_with_untrusted_key(bundle: Path, keys: dict, toy_bundles: dict) -> None:
    resign(bundle, lambda d: d["calibration"].update(image_threshold=1000.0))
    sign_bundle(bundle, keys["stranger"][0])


TAMPERING = {
    "threshold edited, manifest re-hashed": (_raise_threshold, BadSignatureError, "changed: manifest field(s) calibration"),
    "graph swapped, manifest re-hashed": (_swap_graph, BadSignatureError, "model.onnx (a different file than the one signed)"),
    "signature made by another key": (_signature_of_another_key, BadSignatureError, "does not verify with trusted key"),
    "signature file removed": (_remove_signature, UnsignedBundleError, "is not signed (signature.json missing)"),
    "re-signed with an untrusted key": (_resign_with_untrusted_key, UntrustedKeyError, "which is not a trusted key here"),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_each_tampering_is_refused_under_trust_before_compiling(
    case: str, signed: Path, keys: dict, toy_bundles: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tamper, error, words = TAMPERING[case]
    trusted = _trust_dir(tmp_path, keys, "factory")
    spy = _CompileSpy(monkeypatch)
    load(signed, trust=trusted).close()  # intact: loads, and the spy sees its graph compiled
    assert len(spy.created) == 1
    tamper(signed, keys, toy_bundles)
    spy.created.clear()
    with pytest.raises(error) as info:
        load(signed, trust=trusted)
    assert words in str(info.value) and str(signed) in str(info.value)
    assert spy.created == []  # refused before any graph was compiled
    with pytest.raises(error):
        read_bundle(signed, trust=trusted)


def test_each_tampering_has_its_own_message(seg_bundle: Path, keys: dict, toy_bundles: dict, tmp_path: Path) -> None:
    trusted = _trust_dir(tmp_path, keys, "factory")
    messages = {}
    for i, (case, (tamper, _, _)) in enumerate(TAMPERING.items()):
        bundle = Path(shutil.copytree(seg_bundle, tmp_path / f"b{i}"))
        sign_bundle(bundle, keys["factory"][0])
        tamper(bundle, keys, toy_bundles)
        with pytest.raises(SignatureError) as info:
            read_bundle(bundle, trust=trusted)
        messages[case] = str(info.value).replace(str(bundle), "B")
    assert len(set(messages.values())) == len(TAMPERING), messages


def test_unsigned_edits_without_trust_behave_as_before(signed: Path, keys: dict, toy_bundles: dict) -> None:
    """No trust set: a re-hashed threshold edit loads as today (the checksum is no signature)."""
    _raise_threshold(signed, keys, toy_bundles)
    with load(signed) as det:
        assert det.calibration.image_threshold == 1000.0


# ------------------------------------------------------------------- what loads


def test_signed_bundle_loads_and_says_by_which_key(signed: Path, keys: dict, tmp_path: Path) -> None:
    trusted = _trust_dir(tmp_path, keys, "factory")
    with read_bundle(signed, trust=trusted) as b:
        assert b.signature.trusted_by.name == "factory.pub"
        assert b.signature.key_id == TrustedKeys.load(keys["factory"][1]).keys.popitem()[0]
    with read_bundle(signed) as b:  # no trust: read, not checked
        assert b.signature is not None and b.signature.trusted_by is None
    with load(signed, trust=keys["factory"][1]) as det:  # a single .pub file works too
        assert det.predict(np.full((64, 80, 3), 128, np.uint8)).label in (0, 1)


def test_rotation_two_trusted_keys(seg_bundle: Path, keys: dict, tmp_path: Path) -> None:
    trusted = _trust_dir(tmp_path, keys, "factory", "factory2027")
    old, new, other = (Path(shutil.copytree(seg_bundle, tmp_path / n)) for n in ("old", "new", "other"))
    sign_bundle(old, keys["factory"][0])
    sign_bundle(new, keys["factory2027"][0])
    sign_bundle(other, keys["stranger"][0])
    for bundle, pub in ((old, "factory.pub"), (new, "factory2027.pub")):
        with load(bundle, trust=trusted) as det:
            assert det.predict(np.full((64, 80, 3), 128, np.uint8)).score >= 0
        with read_bundle(bundle, trust=trusted) as b:
            assert b.signature.trusted_by.name == pub
    with pytest.raises(UntrustedKeyError):
        load(other, trust=trusted)
    # The same through a list of .pub files, and through $EDGEANOMALY_TRUST.
    assert read_bundle(new, trust=[keys["factory"][1], keys["factory2027"][1]]).signature.key_id


def test_trust_from_the_environment(signed: Path, seg_bundle: Path, keys: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.setenv("EDGEANOMALY_TRUST", os.pathsep.join([str(keys["stranger"][1]), str(keys["factory"][1].parent)]))
    load(signed).close()
    with pytest.raises(UnsignedBundleError, match="is not signed"):
        load(seg_bundle)
    monkeypatch.delenv("EDGEANOMALY_TRUST")
    load(seg_bundle).close()  # unset: as before


def test_trust_refuses_bad_settings(signed: Path, keys: dict, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="No trusted public key found"):
        load(signed, trust=tmp_path / "empty")
    with pytest.raises(ConfigError, match="no such file or folder"):
        load(signed, trust=tmp_path / "nope")
    (tmp_path / "bad.pub").write_text("not a key")
    with pytest.raises(ConfigError, match="is not a PEM public key"):
        load(signed, trust=tmp_path / "bad.pub")
    with pytest.raises(ConfigError, match="verify=False"):
        load(signed, trust=keys["factory"][1], verify=False)
    with pytest.raises(ConfigError, match="is not a PEM public key.*this is a private key"):
        TrustedKeys.load(keys["factory"][0])


# ------------------------------------------------------------------- zip, calibrate, export


def test_signed_directory_zipped_stays_signed(signed: Path, keys: dict, tmp_path: Path) -> None:
    trusted = _trust_dir(tmp_path, keys, "factory")
    packed = pack_bundle(signed, tmp_path / "b.zip")
    with read_bundle(packed, trust=trusted) as b:
        assert b.signature.trusted_by is not None
    # zip -r of the folder (one top-level folder) too
    folder_zip = tmp_path / "folder.zip"
    with zipfile.ZipFile(folder_zip, "w") as zf:
        for p in sorted(signed.rglob("*")):
            zf.write(p, f"b/{p.relative_to(signed).as_posix()}")
    load(folder_zip, trust=trusted).close()
    # signing a zip repacks it with the signature inside
    unsigned_zip = pack_bundle(signed, tmp_path / "u.zip")
    with zipfile.ZipFile(unsigned_zip) as zf:
        assert SIGNATURE_NAME in zf.namelist()


def test_signing_a_zip_in_place(seg_bundle: Path, keys: dict, tmp_path: Path) -> None:
    packed = pack_bundle(seg_bundle, tmp_path / "b.zip")
    with pytest.raises(UnsignedBundleError):
        read_bundle(packed, trust=keys["factory"][1])
    sign_bundle(packed, keys["factory"][0])
    with read_bundle(packed, trust=keys["factory"][1]) as b:
        assert b.signature.trusted_by.name == "factory.pub"


@pytest.mark.parametrize("as_zip", [False, True])
def test_calibration_drops_the_signature_or_resigns_with_a_key(signed: Path, keys: dict, tmp_path: Path, as_zip: bool) -> None:
    bundle = pack_bundle(signed, tmp_path / "b.zip") if as_zip else signed
    trusted = keys["factory"][1]
    with read_bundle(bundle) as b:
        cal = b.manifest.calibration
    import dataclasses

    update_calibration(bundle, dataclasses.replace(cal, image_threshold=cal.image_threshold * 1.01, method="manual"))
    with read_bundle(bundle) as b:
        assert b.signature is None  # the old signature no longer holds: removed, not left stale
    with pytest.raises(UnsignedBundleError):
        read_bundle(bundle, trust=trusted)
    update_calibration(bundle, dataclasses.replace(cal, image_threshold=cal.image_threshold * 1.02, method="manual"),
                       sign_key=keys["factory"][0])
    with read_bundle(bundle, trust=trusted) as b:
        assert b.manifest.calibration.image_threshold == pytest.approx(cal.image_threshold * 1.02)


def test_write_bundle_signs_before_moving_into_place(signed: Path, keys: dict, tmp_path: Path) -> None:
    import dataclasses

    from edgeanomaly.bundle import write_bundle

    with read_bundle(signed) as b:
        files = {f.path: b.root / f.path for f in b.manifest.files()}
        for name in ("w", "w.zip"):
            out = write_bundle(tmp_path / name, dataclasses.replace(b.manifest), files, sign_key=keys["factory2027"][0])
            with read_bundle(out, trust=keys["factory2027"][1]) as w:
                assert w.signature.trusted_by is not None


# ------------------------------------------------------------------- the graph against the manifest


def test_graph_metadata_reader_agrees_with_onnx_and_openvino(seg_bundle: Path) -> None:
    """The torch-free readers against the libraries' own parsers (independent oracles)."""
    onnx = pytest.importorskip("onnx")
    import openvino as ov

    proto = onnx.load(str(seg_bundle / "model.onnx"), load_external_data=False)
    assert graph_model_info(seg_bundle / "model.onnx", "onnx") == {p.key: p.value for p in proto.metadata_props}
    model = ov.Core().read_model(str(seg_bundle / "openvino" / "model.xml"))
    section = model.get_rt_info()["model_info"]
    expected = {k: model.get_rt_info(["model_info", k]).astype(str) for k in section}
    assert len(expected) >= 14
    assert graph_model_info(seg_bundle / "openvino" / "model.xml", "openvino") == expected


@pytest.mark.parametrize("artifact,path", [("onnx-fp32", "model.onnx"), ("openvino-fp32", "openvino/model.xml")])
def test_graph_of_another_model_is_refused_unsigned(
    artifact: str, path: str, seg_bundle_copy: Path, other_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 20 item 6: another model's graph with the same contract, every checksum
    recomputed, no trust set (on main it loaded and scored)."""
    bundle = seg_bundle_copy
    other = other_model
    art = next(a for a in read_bundle(bundle).manifest.artifacts if a.name == artifact)
    updates = {}
    for f in art.files:
        shutil.copy(other / f.path, bundle / f.path)
        updates[f.path] = sha256_file(bundle / f.path)

    def edit(d: dict) -> None:
        for a in d["artifacts"]:
            for f in a["files"]:
                if f["path"] in updates:
                    f["sha256"], f["bytes"] = updates[f["path"]]

    resign(bundle, edit)
    spy = _CompileSpy(monkeypatch)
    load(other, artifact=artifact).close()  # the graph is fine in its own bundle (and the spy sees it)
    assert len(spy.created) == 1
    spy.created.clear()
    with pytest.raises(GraphMismatchError) as info:
        load(bundle, artifact=artifact)
    message = str(info.value)
    assert f"artifact {artifact} ({path})" in message
    assert "model='toy-other' where the manifest says 'toy-segmentation'" in message
    assert spy.created == []
    assert any("is not this bundle's graph" in p for p in verify_bundle(bundle, graphs=True))
    with pytest.raises(GraphMismatchError):
        sign_bundle(bundle, generate_keypair(bundle.parent / "k", "k")[0])  # never signs a mixed-up bundle


def test_graph_without_model_info_is_refused(seg_bundle_copy: Path) -> None:
    onnx = pytest.importorskip("onnx")
    path = seg_bundle_copy / "model.onnx"
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    onnx.save(proto, str(path))
    digest, size = sha256_file(path)

    def edit(d: dict) -> None:
        for a in d["artifacts"]:
            for f in a["files"]:
                if f["path"] == "model.onnx":
                    f["sha256"], f["bytes"] = digest, size

    resign(seg_bundle_copy, edit)
    with pytest.raises(GraphMismatchError, match="carries no model_info"):
        load(seg_bundle_copy, artifact="onnx-fp32")


def test_fp16_graph_under_the_fp32_name_is_refused(seg_bundle_copy: Path) -> None:
    """Same model, same export, another precision: the IR's own precision key says so."""
    b = seg_bundle_copy
    for ext in ("xml", "bin"):
        shutil.copy(b / f"openvino-fp16/model.{ext}", b / f"openvino/model.{ext}")
    updates = {p: sha256_file(b / p) for p in ("openvino/model.xml", "openvino/model.bin")}

    def edit(d: dict) -> None:
        for a in d["artifacts"]:
            for f in a["files"]:
                if f["path"] in updates:
                    f["sha256"], f["bytes"] = updates[f["path"]]

    resign(b, edit)
    with pytest.raises(GraphMismatchError, match="precision='fp16' where the manifest says 'fp32'"):
        load(b, artifact="openvino-fp32")


def test_malformed_onnx_is_a_bundle_error(tmp_path: Path) -> None:
    from edgeanomaly.errors import BundleError

    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x0a\xff\xff\xff\xff\x0f")  # a length far past the end
    with pytest.raises(BundleError, match="is not a readable onnx graph"):
        graph_model_info(bad, "onnx")


# ------------------------------------------------------------------- torch-free


def test_keygen_sign_verify_and_trusted_load_without_torch(seg_bundle: Path, tmp_path: Path) -> None:
    """The device side (bundle + runtime + CLI) signs and verifies with torch blocked."""
    bundle = Path(shutil.copytree(seg_bundle, tmp_path / "b"))
    script = textwrap.dedent(f"""
        import sys
        class _Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "onnx"):
                    raise ImportError(name + " is blocked")
        sys.meta_path.insert(0, _Block())
        from click.testing import CliRunner
        from edgeanomaly.cli import main
        r = CliRunner()
        out = r.invoke(main, ["keygen", "--out", {str(tmp_path / 'keys')!r}, "--name", "dev"])
        assert out.exit_code == 0, out.output
        out = r.invoke(main, ["sign", {str(bundle)!r}, "--key", {str(tmp_path / 'keys' / 'dev.key')!r}])
        assert out.exit_code == 0, out.output
        out = r.invoke(main, ["verify", {str(bundle)!r}, "--trust", {str(tmp_path / 'keys')!r}])
        assert out.exit_code == 0, out.output
        from edgeanomaly.runtime import load
        load({str(bundle)!r}, trust={str(tmp_path / 'keys')!r}).close()
        assert "torch" not in sys.modules and "onnx" not in sys.modules
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stdout + proc.stderr


# ------------------------------------------------------------------- command line


def _cli(*args: str):
    from click.testing import CliRunner

    from edgeanomaly.cli import main

    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_keygen_sign_verify_info_predict(seg_bundle: Path, tmp_path: Path) -> None:

    bundle = Path(shutil.copytree(seg_bundle, tmp_path / "b"))
    image = write_rgb(tmp_path / "part.png", part_image(64, 80))
    r = _cli("keygen", "--out", tmp_path / "keys")
    assert r.exit_code == 0 and "signing.key" in r.output, r.output
    assert (tmp_path / "keys" / "signing.key").stat().st_mode & 0o777 == 0o600
    assert _cli("keygen", "--out", tmp_path / "keys").exit_code == 1  # never replaces a key unasked
    trust = tmp_path / "trust"
    trust.mkdir()
    shutil.copy(tmp_path / "keys" / "signing.pub", trust)

    r = _cli("info", bundle)
    assert r.exit_code == 0 and "Signature    none (unsigned" in r.output, r.output
    r = _cli("verify", bundle, "--trust", trust)
    assert r.exit_code == 1 and "REFUSED" in r.output and "is not signed" in r.output, r.output
    r = _cli("predict", bundle, image, "--trust", trust)
    assert r.exit_code == 1 and "is not signed" in r.output, r.output

    r = _cli("sign", bundle, "--key", tmp_path / "keys" / "signing.key")
    assert r.exit_code == 0 and "signed" in r.output, r.output
    key_id = TrustedKeys.load(trust).keys.popitem()[0]
    r = _cli("info", bundle)
    assert r.exit_code == 0 and f"Signature    key {key_id}" in r.output and "not checked" in r.output, r.output
    r = _cli("info", bundle, "--trust", trust)
    assert r.exit_code == 0 and f"Signature    valid: key {key_id} (trusted: signing.pub)" in r.output, r.output
    r = _cli("verify", bundle, "--trust", trust)
    assert r.exit_code == 0 and r.output.startswith("VERIFIED") and key_id in r.output, r.output
    r = _cli("predict", bundle, image, "--trust", trust, "--json")
    assert r.exit_code == 0, r.output

    resign(bundle, lambda d: d["calibration"].update(image_threshold=1000.0))
    r = _cli("verify", bundle, "--trust", trust)
    assert r.exit_code == 1 and "changed after key" in r.output, r.output
    r = _cli("info", bundle, "--trust", trust)
    assert r.exit_code == 1 and "REFUSED" in r.output, r.output
    r = _cli("predict", bundle, image, "--trust", trust)
    assert r.exit_code == 1 and "changed after key" in r.output and "Traceback" not in r.output, r.output


def test_cli_calibrate_says_the_signature_no_longer_holds(seg_bundle: Path, tmp_path: Path, keys: dict) -> None:

    bundle = Path(shutil.copytree(seg_bundle, tmp_path / "b"))
    sign_bundle(bundle, keys["factory"][0])
    data = tmp_path / "normal"
    for i in range(6):
        write_rgb(data / f"{i}.png", part_image(64, 80, seed=i))
    r = _cli("calibrate", bundle, "--data", data)
    assert r.exit_code == 0, r.output
    assert "no longer holds" in r.output and "unsigned now" in r.output, r.output
    with pytest.raises(UnsignedBundleError):
        read_bundle(bundle, trust=keys["factory"][1])
    r = _cli("calibrate", bundle, "--data", data, "--quantile", "0.9", "--sign-key", keys["factory2027"][0])
    assert r.exit_code == 0 and "signed with key" in r.output and "no longer holds" not in r.output, r.output
    with read_bundle(bundle, trust=keys["factory2027"][1]) as b:
        assert b.manifest.calibration.quantile == 0.9


@pytest.mark.parametrize("content,words", [
    (b"{not json", "is not valid JSON"),
    (b'{"format": "edgeanomaly-signature-v1"}', "has keys ['format']"),
    (b"[" * 100000, "is not valid JSON"),
])
def test_malformed_signature_file(signed: Path, keys: dict, content: bytes, words: str) -> None:
    (signed / SIGNATURE_NAME).write_bytes(content)
    with pytest.raises(BadSignatureError, match=words.replace("[", r"\[")):
        read_bundle(signed, trust=keys["factory"][1])
    with read_bundle(signed) as b:  # without trust: read as before, the problem reported by info
        assert b.signature is None and words.split("'")[0] in b.signature_problem


def test_ir_metadata_read_from_the_end_agrees_with_the_full_parse(seg_bundle: Path, tmp_path: Path) -> None:
    """The fast path (rt_info parsed from the file's end) against the streaming full parse,
    which an IR whose end is not OpenVINO's layout (here: a comment after </net>) takes."""
    from edgeanomaly.bundle._graphinfo import _openvino_tail

    xml = seg_bundle / "openvino" / "model.xml"
    assert _openvino_tail(xml) is not None
    odd = tmp_path / "model.xml"
    odd.write_bytes(xml.read_bytes() + b"<!-- written by hand -->\n")
    assert _openvino_tail(odd) is None
    assert graph_model_info(odd, "openvino") == graph_model_info(xml, "openvino")
    assert graph_model_info(xml, "openvino")["model"] == "toy-segmentation"


def test_the_front_door_signs_and_verifies(seg_bundle_copy: Path, keys: dict, tmp_path: Path) -> None:
    """`ea.keygen`, `ea.sign` / `Bundle.sign`, `Bundle.verify(trust=)` and `ea.load(trust=)`."""
    import edgeanomaly as ea

    private, public = ea.keygen(tmp_path / "keys", "line3")
    bundle = ea.Bundle(seg_bundle_copy)
    assert bundle.verify() == []  # intact, unsigned, no trust asked
    assert any("not signed" in p for p in bundle.verify(trust=public))
    signature = bundle.sign(private)
    assert ea.sign(seg_bundle_copy, private).key_id == signature.key_id
    assert bundle.verify(trust=public) == []
    assert any(f"is signed by key {signature.key_id}" in p and "refusing it" in p for p in bundle.verify(trust=keys["stranger"][1]))
    assert "valid" in bundle.describe(trust=public) and signature.key_id in bundle.describe(trust=public)
    with ea.load(seg_bundle_copy, backend="openvino", trust=public) as detector:
        assert detector.predict(np.zeros((64, 80, 3), np.uint8)).anomaly_map.shape == (64, 80)
    with pytest.raises(UntrustedKeyError):
        ea.load(seg_bundle_copy, backend="openvino", trust=keys["stranger"][1])
