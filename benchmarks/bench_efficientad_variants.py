"""EfficientAD's graph latency by configuration (run by hand): which part costs what.

    PYTHONPATH=$PWD python benchmarks/bench_efficientad_variants.py [--rounds 40] [--threads 2] \
        [--configs 256:152:0.25:paper,256:64:0.25:fast,192:64:0.125:fast] [--parts]

Each config is ``SIZE:CHANNELS:WIDTH:KIND``: the input side, the teacher's output channels
(``teacher_channels``; 152 = all of EfficientNet-Lite0's blocks.4 + blocks.10), the PDN width
and ``paper`` (PDN with average pooling, the paper's decoder) or ``fast`` (``strided=True``,
``light_decoder=True``). Every config's whole graph (the model's ``forward``: teacher,
student, autoencoder, map normalisation, padding and resizing; untrained weights, the shapes
are what count) is exported to ONNX and compiled by OpenVINO for the CPU at f32 execution,
batch 1, ``--threads`` inference threads; the configs are then timed in turns (round-robin,
``--rounds`` rounds, the first 5 dropped) so that other work on the machine weighs on each
alike, and each median is printed with its ratio to the first config's. ``--parts`` times
teacher, student and autoencoder apart as well. Graph time only: ``edgeanomaly benchmark``
measures a bundle per decoded image (decode, preprocess and postprocess included).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from edgeanomaly.models import create_model


class _Part(nn.Module):
    def __init__(self, model, part: str) -> None:
        super().__init__()
        self.model, self.part = model, part

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        if self.part == "autoencoder":
            return m.autoencoder(x, int(m.teacher(x).shape[-2]))
        return getattr(m, self.part)(x)


def _compiled(module: nn.Module, size: int, threads: int, folder: Path):
    import openvino as ov

    x = torch.rand(1, 3, size, size)
    path = folder / f"g{len(list(folder.iterdir()))}.onnx"
    torch.onnx.export(module.eval(), (x,), str(path), input_names=["image"], opset_version=17, dynamo=False)
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                         "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"})
    return compiled.create_infer_request(), x.numpy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", default="256:152:0.25:paper,256:64:0.25:fast,192:64:0.25:fast,256:64:0.125:fast,"
                                        "192:64:0.125:fast,192:32:0.125:fast")
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--parts", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for config in args.configs.split(","):
            size, channels, width, kind = config.split(":")
            fast = kind == "fast"
            model = create_model("efficientad", width=float(width), teacher_channels=int(channels), strided=fast,
                                 light_decoder=fast, pretrained=False)
            model.map_quantiles = torch.tensor([0.0, 1.0, 0.0, 1.0])
            rows.append((config, _compiled(model, int(size), args.threads, Path(tmp))))
            for part in ("teacher", "student", "autoencoder") if args.parts else ():
                rows.append((f"{config} {part}", _compiled(_Part(model, part), int(size), args.threads, Path(tmp))))
        times: list[list[float]] = [[] for _ in rows]
        for _ in range(args.rounds):
            for i, (_, (request, x)) in enumerate(rows):
                t0 = time.perf_counter()
                request.infer({0: x})
                times[i].append(1e3 * (time.perf_counter() - t0))
    first = statistics.median(times[0][5:])
    print("| config (size:channels:width:kind) | graph p50 ms | vs first |\n|---|---:|---:|")
    for (name, _), ts in zip(rows, times):
        median = statistics.median(ts[5:])
        print(f"| {name} | {median:.1f} | {median / first:.2f}x |")


if __name__ == "__main__":
    main()
