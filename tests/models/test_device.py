"""Where a fit runs (issue 22): ``fit --device cpu|cuda|cuda:N|auto``, ``device=`` in
``fit_run``, recipes and ``export --recipe``.

The device logic (parsing, ``auto``, a missing CUDA said clearly and before any work) is
tested everywhere; fitting on a GPU is tested where torch sees one and skipped with the
reason otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from edgeanomaly.cli import main
from edgeanomaly.errors import ConfigError
from edgeanomaly.models import create_model, fit_run, list_models, load_checkpoint, resolve_device

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
needs_no_cuda = pytest.mark.skipif(CUDA, reason="checks the message for a missing CUDA; this machine has one")


def run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize(("spec", "want"), [("cpu", "cpu"), ("CPU", "cpu"), (" cpu ", "cpu"), (None, "cpu"),
                                            (torch.device("cpu"), "cpu")])
def test_cpu_spellings(spec, want: str) -> None:
    assert resolve_device(spec) == torch.device(want)


def test_auto_takes_cuda_exactly_when_torch_sees_one() -> None:
    assert resolve_device("auto").type == ("cuda" if CUDA else "cpu")
    assert resolve_device("AUTO") == resolve_device("auto")


@pytest.mark.parametrize("spec", ["gpu", "cuda:", "cuda:x", "cuda:-1", "mps0", "", 0, 1.5])
def test_other_strings_say_what_is_expected(spec) -> None:
    with pytest.raises(ConfigError, match=r"Expected device as cpu, cuda, cuda:N or auto"):
        resolve_device(spec)


@needs_no_cuda
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "cuda:3"])
def test_missing_cuda_is_said_clearly(spec: str) -> None:
    with pytest.raises(ConfigError, match=rf"Device '{spec}' asked for, but .*(without CUDA|no usable GPU).*--device cpu"):
        resolve_device(spec)


@needs_cuda
def test_cuda_index_past_the_last_gpu_is_an_error() -> None:
    n = torch.cuda.device_count()
    assert resolve_device(f"cuda:{n - 1}") == torch.device(f"cuda:{n - 1}")
    with pytest.raises(ConfigError, match=rf"torch sees {n} CUDA device"):
        resolve_device(f"cuda:{n}")


@needs_no_cuda
def test_cli_fit_on_missing_cuda_fails_before_work(synthetic_root: Path, tmp_path: Path) -> None:
    r = run("fit", "--data", synthetic_root, "--category", "metal", "--out", tmp_path / "pc.run", "--device", "cuda",
            "--backbone", "resnet18", "--no-pretrained")
    assert r.exit_code == 1, r.output
    assert "without CUDA" in r.output or "no usable GPU" in r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "pc.run").exists()


@needs_no_cuda
def test_cli_export_recipe_on_missing_cuda_fails_before_fit(synthetic_root: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text('[model]\nname = "patchcore"\nbackbone = "resnet18"\npretrained = false\n'
                      '[fit]\ndevice = "cuda"\n[export]\nformats = ["onnx"]\n')
    r = run("export", "--recipe", recipe, "--data", synthetic_root, "--category", "metal", "--out", tmp_path / "b")
    assert r.exit_code == 1 and "without CUDA" in r.output and "Fitting" not in r.output, r.output
    # --device overrides the recipe's device
    r = run("export", "--recipe", recipe, "--data", synthetic_root, "--category", "metal", "--out", tmp_path / "b",
            "--device", "gpu")
    assert r.exit_code == 1 and "Expected device as" in r.output and "Fitting" not in r.output, r.output


def test_export_device_needs_a_recipe(tmp_path: Path) -> None:
    ckpt = tmp_path / "x.run"
    ckpt.mkdir()
    r = run("export", ckpt, "--out", tmp_path / "b", "--device", "cpu")
    assert r.exit_code != 0 and "--device" in r.output and "--recipe" in r.output, r.output


def test_recipe_fit_device(tmp_path: Path) -> None:
    from edgeanomaly.export import load_recipe

    p = tmp_path / "r.toml"
    p.write_text('[model]\nname = "padim"\n[fit]\ndevice = "auto"\n')
    assert load_recipe(p).device == "auto"
    p.write_text('[model]\nname = "padim"\n')
    assert load_recipe(p).device == "cpu"
    p.write_text('[model]\nname = "padim"\n[fit]\ndevice = 1\n')
    with pytest.raises(ConfigError, match=r"\[fit\] device must be a string"):
        load_recipe(p)
    p.write_text('[model]\nname = "padim"\n[fit]\ngpu = "cuda"\n')
    with pytest.raises(ConfigError, match=r"unknown key"):
        load_recipe(p)


def test_fit_run_records_the_device(synthetic_root: Path) -> None:
    result = fit_run("padim", synthetic_root, None, category="metal", image_size=64, device="auto",
                     backbone="resnet18", pretrained=False, random_state=0)
    assert result.checkpoint.info["fit_device"].startswith("cuda" if CUDA else "cpu")
    assert result.checkpoint.info["fit_loader"] == {"workers": 4 if CUDA else 1, "batch_size": 16} or CUDA
    assert all(t.device.type == "cpu" for t in result.checkpoint.model.state_dict().values())


def _small(name: str, device: str):
    return create_model(name, backbone="resnet18", pretrained=False, random_state=0).to(device)


def _images(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


@needs_cuda
@pytest.mark.parametrize("name", list_models())
def test_every_model_fits_on_cuda_like_on_the_cpu(name: str, tmp_path: Path) -> None:
    """Features and estimators on the GPU (batches come from the host like the loader's);
    the statistics within 1e-4 relative of the CPU fit; a checkpoint that loads on the CPU."""
    batches = [_images(8, 0), _images(8, 1)]
    cpu = _small(name, "cpu").fit(batches)
    gpu = _small(name, "cuda").fit(batches)
    fitted = {k: v for k, v in gpu.state_dict().items() if v.is_floating_point() and k.split(".")[0] != "feature_extractor"}
    assert fitted
    for key, value in fitted.items():
        assert value.device.type == "cuda", key
        want = cpu.state_dict()[key]
        if name == "patchcore" and key in ("memory_bank_", "bank_sq_norm_"):
            continue  # a selection (same rule, float rounding may break a near-tie): scores below
        scale = float(want.abs().max()) or 1.0
        assert float((value.cpu() - want).abs().max()) <= 1e-4 * scale, key
    test = _images(4, 2)
    got = gpu.predict(test.cuda())["pred_score"].cpu()
    want = cpu.predict(test)["pred_score"]
    tol = 2e-2 if name == "patchcore" else 1e-3
    assert torch.allclose(got, want, rtol=tol, atol=1e-4), (got, want)


@needs_cuda
def test_cuda_checkpoint_is_the_cpu_checkpoint(synthetic_root: Path, tmp_path: Path) -> None:
    for device in ("cpu", "cuda"):
        fit_run("patchcore", synthetic_root, tmp_path / device, category="metal", image_size=64, device=device,
                backbone="resnet18", pretrained=False, random_state=0)
    a, b = load_checkpoint(tmp_path / "cpu"), load_checkpoint(tmp_path / "cuda")
    assert all(t.device.type == "cpu" for t in b.model.state_dict().values())
    assert json.loads((tmp_path / "cuda" / "checkpoint.json").read_text())["info"]["fit_device"].startswith("cuda")
    for key in ("image_auroc", "pixel_auroc"):
        assert abs(a.metrics[key] - b.metrics[key]) <= 0.005, key


# ----------------------------------------------------------------- PatchCore's coreset setting
def test_patchcore_records_its_coreset_method_and_old_checkpoints_were_exact(synthetic_root: Path, tmp_path: Path) -> None:
    model = create_model("patchcore", backbone="resnet18", pretrained=False)
    params = model.get_config()["params"]
    assert params["coreset_method"] == "chunked" and params["coreset_chunk_rows"] == 65_536
    with pytest.raises(ConfigError, match="coreset_method"):
        create_model("patchcore", backbone="resnet18", pretrained=False, coreset_method="fast")
    with pytest.raises(ConfigError, match="coreset_chunk_rows"):
        create_model("patchcore", backbone="resnet18", pretrained=False, coreset_chunk_rows=0)
    fit_run("patchcore", synthetic_root, tmp_path / "pc", category="metal", image_size=64,
            backbone="resnet18", pretrained=False, random_state=0)
    doc = json.loads((tmp_path / "pc" / "checkpoint.json").read_text())
    params = doc["model"]["params"] if "model" in doc and "params" in doc["model"] else None
    assert params is not None and params.pop("coreset_method") == "chunked"
    params.pop("coreset_chunk_rows")
    (tmp_path / "pc" / "checkpoint.json").write_text(json.dumps(doc))
    old = load_checkpoint(tmp_path / "pc").model  # written before the setting existed
    assert old.coreset_method == "greedy"


def test_patchcore_fit_reports_coreset_progress(synthetic_root: Path) -> None:
    stages: list[tuple[str, int, int]] = []
    fit_run("patchcore", synthetic_root, None, category="metal", image_size=64, backbone="resnet18",
            pretrained=False, random_state=0, progress=lambda *a: stages.append(a))
    coreset = [s for s in stages if s[0] == "coreset"]
    assert coreset and coreset[-1][1] == coreset[-1][2] > 0
    assert [s[0] for s in stages].index("coreset") > [s[0] for s in stages].index("fit")


# ----------------------------------------------------------------- bounded memory at the end of a fit
def test_support_table_in_small_blocks_is_the_brute_force_one(monkeypatch) -> None:
    """The neighbour table is computed in blocks of at most 64 MiB (rows per block from the
    bank size); forced to 7 rows per block here, it equals a brute-force cdist + sort."""
    import edgeanomaly.models._patchcore as pc

    model = create_model("patchcore", backbone="resnet18", pretrained=False, coreset_ratio=0.25, random_state=0)
    monkeypatch.setattr(pc, "_SUPPORT_BLOCK_BYTES", 7 * 4 * 64)  # 7 rows of a 64-entry bank
    model.fit([_images(4, 0)])  # 4 x 8 x 8 patches, a quarter kept
    bank = model.memory_bank_.double()
    assert bank.shape[0] == 64
    d = torch.cdist(bank, bank)
    got = torch.gather(d, 1, model.support_idx_).sort(1).values
    want = d.sort(1).values[:, : model.support_idx_.shape[1]]
    assert torch.allclose(got, want, atol=1e-4)


def test_take_rows_is_cat_and_empties_the_buffer() -> None:
    model = create_model("dfm", backbone="resnet18", pretrained=False)
    parts = [torch.randn(n, 3, 2) for n in (4, 1, 5)]
    for p in parts:
        model._update(p)
    assert torch.equal(model._take_rows(), torch.cat(parts)) and len(model._rows) == 0


def test_patchcore_predicts_in_blocks_that_bound_its_distance_matrix(monkeypatch, synthetic_root: Path) -> None:
    """predict_samples splits batches so (images x patches x bank) stays within 256 MiB; the
    scores are those of whole batches."""
    import edgeanomaly.models._patchcore as pc
    from edgeanomaly.data import PreprocessConfig, load_dataset
    from edgeanomaly.models._fit import predict_samples

    model = create_model("patchcore", backbone="resnet18", pretrained=False, random_state=0)
    model.fit([_images(6, 0)])
    m = model.memory_bank_.shape[0]
    assert model.predict_batch_limit(256, 256) == max(1, 256 * 2**20 // (32 * 32 * m * 4))
    samples = load_dataset(synthetic_root, category="metal").test[:5]
    cfg = PreprocessConfig(64)
    whole = predict_samples(model, samples, cfg, batch_size=5)
    monkeypatch.setattr(pc, "_PREDICT_BLOCK_BYTES", 2 * 8 * 8 * m * 4)  # two 64 px images per call
    assert model.predict_batch_limit(64, 64) == 2
    split = predict_samples(model, samples, cfg, batch_size=5)
    assert np.allclose(split.scores, whole.scores, rtol=1e-5, atol=1e-6)
    assert np.allclose(split.maps, whole.maps, rtol=1e-5, atol=1e-6)
