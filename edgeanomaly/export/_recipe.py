"""Export recipes: one TOML file per model x target, read into a validated :class:`Recipe`.

```toml
[model]
name = "patchcore"
backbone = "efficientnet_lite0"
layers = ["blocks.4", "blocks.10"]
params = { coreset_ratio = 0.1 }

[data]
image_size = 256
# center_crop = 224

[fit]
device = "cpu"            # cpu, cuda, cuda:N or auto (CUDA when torch sees one)

[export]
formats = ["onnx", "openvino"]
precisions = ["fp32", "fp16", "int8"]
static_batch = 0          # 0 = dynamic batch
# or exactly these artifacts instead of every format x precision pair:
# artifacts = ["onnx-fp32", "openvino-int8"]
```
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeanomaly.errors import ConfigError
from edgeanomaly.recipes import resolve_recipe
from edgeanomaly.registry import format_names

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["Recipe", "load_recipe"]

_SECTIONS = {"model": {"name", "backbone", "layers", "params", "pretrained"}, "data": {"image_size", "center_crop", "batch_size"},
             "fit": {"device"},
             "export": {"formats", "precisions", "static_batch", "artifacts"}}


@dataclass(frozen=True)
class Recipe:
    model: str
    model_kwargs: dict[str, Any]
    image_size: int | list[int] = 256
    center_crop: int | list[int] | None = None
    batch_size: int = 16
    formats: list[str] = field(default_factory=lambda: list(format_names()))
    precisions: list[str] = field(default_factory=lambda: ["fp32"])
    static_batch: int | None = None
    path: Path | None = None
    #: Exactly these artifacts (``"onnx-fp32"``...) instead of every format x precision pair.
    artifacts: list[str] | None = None
    #: Where the fit runs: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
    device: str = "cpu"


def load_recipe(path: str | os.PathLike[str]) -> Recipe:
    """Read and validate a recipe (a file, or a packaged recipe by name such as ``"patchcore"``).

    Unknown sections or keys are errors naming the file.
    """
    p = resolve_recipe(path)
    try:
        doc = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Recipe {p} is not valid TOML: {exc}") from exc
    for section, body in doc.items():
        if section not in _SECTIONS:
            raise ConfigError(f"Recipe {p}: unknown section [{section}]; expected {', '.join(sorted(_SECTIONS))}")
        unknown = set(body) - _SECTIONS[section]
        if unknown:
            raise ConfigError(f"Recipe {p}: unknown key(s) {sorted(unknown)} in [{section}]; expected {sorted(_SECTIONS[section])}")
    m = doc.get("model", {})
    if "name" not in m:
        raise ConfigError(f"Recipe {p}: [model] needs a name (a registered model: patchcore, padim, dfkde, dfm, fastflow, efficientad)")
    kwargs: dict[str, Any] = dict(m.get("params", {}))
    for key in ("backbone", "layers", "pretrained"):
        if key in m:
            kwargs[key] = tuple(m[key]) if key == "layers" else m[key]
    d, e = doc.get("data", {}), doc.get("export", {})
    device = doc.get("fit", {}).get("device", "cpu")
    if not isinstance(device, str):
        raise ConfigError(f"Recipe {p}: [fit] device must be a string (cpu, cuda, cuda:N or auto), got {device!r}")
    static = int(e.get("static_batch", 0) or 0)
    artifacts = [str(a).lower() for a in e["artifacts"]] if "artifacts" in e else None
    if artifacts is not None:
        if "formats" in e or "precisions" in e:
            raise ConfigError(f"Recipe {p}: [export] takes either artifacts or formats/precisions, not both")
        bad = [a for a in artifacts if a.count("-") != 1]
        if bad or not artifacts:
            raise ConfigError(f"Recipe {p}: expected artifacts named FORMAT-PRECISION (e.g. onnx-fp32, openvino-int8), got {artifacts}")
        pairs = [a.split("-") for a in artifacts]
        e = {**e, "formats": list(dict.fromkeys(f for f, _ in pairs)), "precisions": list(dict.fromkeys(q for _, q in pairs))}
    return Recipe(
        model=str(m["name"]),
        model_kwargs=kwargs,
        image_size=d.get("image_size", 256),
        center_crop=d.get("center_crop"),
        batch_size=int(d.get("batch_size", 16)),
        formats=list(e.get("formats", format_names())),
        precisions=list(e.get("precisions", ["fp32"])),
        static_batch=static or None,
        path=p,
        artifacts=artifacts,
        device=device,
    )
