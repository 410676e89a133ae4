"""`edgeanomaly deploy`: each repository parsed with the target's own schema and checked against the manifest."""

from __future__ import annotations

import json
import shlex

import pytest
from click.testing import CliRunner

pytestmark = pytest.mark.slow


def _deploy(tmp_path, bundle, target, *extra):
    from edgeanomaly.cli import main

    out = tmp_path / target
    result = CliRunner().invoke(main, ["deploy", str(bundle), "--target", target, "--out", str(out), "--model-name", "dfm", *extra])
    assert result.exit_code == 0, result.output
    return out


def test_triton_config_parses_into_model_config(tmp_path, serve_bundle):
    text_format = pytest.importorskip("google.protobuf.text_format")
    model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="needs tritonclient[grpc] ([serve] extra)")
    from edgeanomaly.bundle import read_bundle

    out = _deploy(tmp_path, serve_bundle, "triton", "--max-batch-size", "4", "--instances", "2")
    with read_bundle(serve_bundle) as b:
        manifest = b.manifest
        onnx_bytes = (b.root / b.artifact(format="onnx").path).read_bytes()
    config = text_format.Parse((out / "dfm" / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert config.name == "dfm" and config.backend == "onnxruntime"
    assert config.max_batch_size == 4
    assert [i.name for i in config.input] == [manifest.input["name"]]
    assert config.input[0].data_type == model_config_pb2.TYPE_FP32
    assert list(config.input[0].dims) == manifest.input["shape"][1:]
    assert [o.name for o in config.output] == [o["name"] for o in manifest.outputs]
    for out_cfg, spec in zip(config.output, manifest.outputs):
        assert out_cfg.data_type == model_config_pb2.TYPE_FP32
        if len(spec["shape"]) == 1:  # batch only: [1] reshaped to []
            assert list(out_cfg.dims) == [1] and out_cfg.HasField("reshape") and list(out_cfg.reshape.shape) == []
        else:
            assert list(out_cfg.dims) == spec["shape"][1:]
    assert config.HasField("dynamic_batching")
    assert [(g.count, g.kind) for g in config.instance_group] == [(2, model_config_pb2.ModelInstanceGroup.KIND_CPU)]
    assert {k: v.string_value for k, v in config.parameters.items()} == manifest.model_info
    assert (out / "dfm" / "1" / "model.onnx").read_bytes() == onnx_bytes
    assert json.loads((out / "dfm" / "manifest.json").read_text())["model_info"] == manifest.model_info


def test_triton_openvino_artifact(tmp_path, serve_bundle):
    text_format = pytest.importorskip("google.protobuf.text_format")
    model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="needs tritonclient[grpc] ([serve] extra)")
    out = _deploy(tmp_path, serve_bundle, "triton", "--artifact", "openvino-fp32")
    config = text_format.Parse((out / "dfm" / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert config.backend == "openvino"
    assert sorted(p.name for p in (out / "dfm" / "1").iterdir()) == ["model.bin", "model.xml"]


def test_ovms_repository_structure(tmp_path, serve_bundle):
    """OVMS: config.json with model_config_list; base_path holds numbered versions with model.xml + .bin."""
    import openvino as ov

    from edgeanomaly.bundle import read_bundle

    out = _deploy(tmp_path, serve_bundle, "ovms")
    config = json.loads((out / "config.json").read_text())
    assert list(config) == ["model_config_list"]
    (entry,) = config["model_config_list"]
    cfg = entry["config"]
    assert cfg["name"] == "dfm" and cfg["base_path"] == "/models/dfm" and "batch_size" not in cfg
    model_dir = out / "dfm"  # mounted at /models
    versions = [p for p in model_dir.iterdir() if p.is_dir()]
    assert [v.name for v in versions] == ["1"]
    assert sorted(p.name for p in versions[0].iterdir()) == ["model.bin", "model.xml"]
    model = ov.Core().read_model(str(versions[0] / "model.xml"))
    with read_bundle(serve_bundle) as b:
        manifest = b.manifest
    assert model.input(0).get_any_name() == "image"
    assert [d.get_length() if d.is_static else -1 for d in model.input(0).get_partial_shape()] == manifest.input["shape"]
    assert sorted(o.get_any_name() for o in model.outputs) == sorted(o["name"] for o in manifest.outputs)
    assert json.loads((model_dir / "manifest.json").read_text())["calibration"]["image_threshold"] == manifest.calibration.image_threshold


def test_kserve_inference_service_and_dockerfile(tmp_path, serve_bundle):
    yaml = pytest.importorskip("yaml", reason="needs pyyaml ([serve] extra)")
    from edgeanomaly.bundle import read_bundle

    out = _deploy(tmp_path, serve_bundle, "kserve", "--image", "registry.local/edgeanomaly-dfm:1")
    isvc = yaml.safe_load((out / "inferenceservice.yaml").read_text())
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1" and isvc["kind"] == "InferenceService"
    (container,) = isvc["spec"]["predictor"]["containers"]
    assert container["image"] == "registry.local/edgeanomaly-dfm:1"
    port = container["ports"][0]["containerPort"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": port}
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert set(container["resources"]) == {"requests", "limits"}
    args = container["args"]
    assert args[args.index("--http-port") + 1] == str(port) and args[args.index("--host") + 1] == "0.0.0.0"

    # Dockerfile: instruction lines; the entrypoint runs `edgeanomaly serve` on the copied bundle.
    instructions = [line.split(None, 1) for line in (out / "Dockerfile").read_text().splitlines() if line and not line.startswith("#")]
    keys = [k for k, _ in instructions]
    assert keys[0] == "FROM" and "ENTRYPOINT" in keys
    body = dict(instructions)
    entry = json.loads(body["ENTRYPOINT"])
    src, dst = shlex.split(body["COPY"])
    assert entry == ["edgeanomaly", "serve"] and json.loads(body["CMD"])[0] == dst == args[0]
    assert str(port) in body["EXPOSE"].split()
    assert any("edgeanomaly[serve]" in v for k, v in instructions if k == "RUN")
    with read_bundle(out / src) as copied, read_bundle(serve_bundle) as original:  # the copy verifies
        assert copied.manifest.to_dict() == original.manifest.to_dict()


def test_deploy_refuses_nonempty_out_and_leaves_nothing(tmp_path, serve_bundle):
    from edgeanomaly.cli import main

    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    result = CliRunner().invoke(main, ["deploy", str(serve_bundle), "--target", "triton", "--out", str(out)])
    assert result.exit_code == 1 and "new or empty folder" in result.output
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    result = CliRunner().invoke(main, ["deploy", str(serve_bundle), "--target", "ovms", "--out", str(tmp_path / "x"), "--artifact", "nope"])
    assert result.exit_code == 1 and "nope" in result.output
    assert not (tmp_path / "x").exists() and not list(tmp_path.glob(".x.*"))


def _pod_argv(container: dict, dockerfile: str) -> list[str]:
    """The command line Kubernetes runs for a container of this image: ``command`` replaces the
    image's ENTRYPOINT, ``args`` its CMD; a ``command`` without ``args`` drops the CMD
    (kubernetes.io, "Define a Command and Arguments for a Container")."""
    instructions = dict(line.split(None, 1) for line in dockerfile.splitlines() if line and not line.startswith("#"))
    entrypoint = json.loads(instructions["ENTRYPOINT"]) if "ENTRYPOINT" in instructions else []
    cmd = json.loads(instructions["CMD"]) if "CMD" in instructions else []
    if "command" in container:
        return list(container["command"]) + list(container.get("args", []))
    return entrypoint + (list(container["args"]) if "args" in container else cmd)


def test_kserve_pod_command_line_parses_as_edgeanomaly_serve(tmp_path, serve_bundle):
    """Issue 20 item 9: the pod ran `edgeanomaly serve BUNDLE ... serve BUNDLE ...` and exited 2.
    The command Kubernetes builds from the manifest and the Dockerfile is parsed by the real CLI,
    with the image's bundle path pointing at the copy deploy wrote; `docker run` (the CMD) too."""
    yaml = pytest.importorskip("yaml", reason="needs pyyaml ([serve] extra)")
    import click

    from edgeanomaly.cli import main

    out = _deploy(tmp_path, serve_bundle, "kserve")
    dockerfile = (out / "Dockerfile").read_text()
    (container,) = yaml.safe_load((out / "inferenceservice.yaml").read_text())["spec"]["predictor"]["containers"]
    src, dst = shlex.split(dict(line.split(None, 1) for line in dockerfile.splitlines() if line and not line.startswith("#"))["COPY"])
    for argv in (_pod_argv(container, dockerfile), _pod_argv({}, dockerfile)):
        assert argv[0] == "edgeanomaly", argv
        argv = [str(out / src) if a == dst else a for a in argv[1:]]
        assert argv[0] == "serve", argv
        cmd = main.get_command(click.Context(main), argv[0])
        try:
            sub = cmd.make_context("serve", argv[1:])
        except click.UsageError as exc:
            pytest.fail(f"the pod's command line {argv} does not parse: {exc}")
        assert [str(b) for b in sub.params["bundles"]] == [str(out / src)]
        assert sub.params["host"] == "0.0.0.0" and sub.params["http_port"] == container["ports"][0]["containerPort"]
        assert list(sub.params["model_names"]) == ["dfm"]


def test_kserve_limits_keep_the_server_inside_the_pod_memory_limit(tmp_path, serve_bundle):
    """The pod's memory limit is a cgroup: past it the kernel kills the pod (no 503). The args
    carry request limits whose bound (README, "Serve at scale") fits the limit with 8 clients in
    flight and 512 MB after warm-up (this DFM bundle: ~190 MB)."""
    yaml = pytest.importorskip("yaml", reason="needs pyyaml ([serve] extra)")
    from edgeanomaly.serve import memory_bound

    out = _deploy(tmp_path, serve_bundle, "kserve")
    (container,) = yaml.safe_load((out / "inferenceservice.yaml").read_text())["spec"]["predictor"]["containers"]
    args = container["args"]
    value = {k: float(args[args.index(k) + 1]) for k in ("--max-request-mp", "--max-request-mb", "--max-response-mb")}
    limit = container["resources"]["limits"]["memory"]
    assert limit.endswith("Gi")
    bound = memory_bound(512 << 20, value["--max-request-mp"] * 1e6, value["--max-request-mb"] * (1 << 20),
                         value["--max-response-mb"] * (1 << 20), 8)
    assert bound <= float(limit[:-2]) * (1 << 30), (bound / 2**30, limit)
