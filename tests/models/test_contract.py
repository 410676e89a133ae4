"""Contract tests over every registered model: a model is tested here by being registered."""

from __future__ import annotations

import pytest
import torch

from edgeanomaly.errors import ConfigError, NotFittedError
from edgeanomaly.models import create_model, list_models
from edgeanomaly.models._checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from edgeanomaly.data import PreprocessConfig

SIZE = 64


#: Models trained for epochs: a short training keeps the contract tests fast (quality is
#: tested elsewhere: tests/models/test_quality_real.py).
SHORT_TRAINING = {"fastflow": {"epochs": 3, "flow_steps": 2, "score_top_fraction": 0.1},
                  "efficientad": {"width": 0.125, "teacher_epochs": 1, "epochs": 2}}


def small(name: str, seed: int = 0):
    # resnet18 with random weights keeps these tests fast and independent of downloads.
    return create_model(name, backbone="resnet18", pretrained=False, random_state=seed, **SHORT_TRAINING.get(name, {}))


def images(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def train() -> list[torch.Tensor]:
    return [images(4, 1), images(4, 2)]


def test_registry_lists_the_models() -> None:
    assert list_models() == ["dfkde", "dfm", "efficientad", "fastflow", "padim", "patchcore"]


def test_unknown_model_suggests_close_match() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'patchcore'"):
        create_model("patchcor")


@pytest.mark.parametrize("name", list_models())
def test_fit_returns_self_and_outputs_follow_graph_contract(name: str, train) -> None:
    m = small(name)
    assert m.fit(train) is m
    out = m.predict(images(3, 5))
    assert tuple(out) == m.output_names
    assert out["pred_score"].shape == (3,)
    assert torch.isfinite(out["pred_score"]).all()
    if m.task == "segmentation":
        assert out["anomaly_map"].shape == (3, 1, SIZE, SIZE)
        assert torch.isfinite(out["anomaly_map"]).all()


@pytest.mark.parametrize("name", list_models())
def test_unfitted_use_raises(name: str) -> None:
    m = small(name)
    with pytest.raises(NotFittedError, match=f"{type(m).__name__}.*call fit\\(\\) first"):
        m.predict(images(1, 0))


@pytest.mark.parametrize("name", list_models())
def test_deterministic_under_random_state(name: str, train) -> None:
    a = small(name, seed=3).fit(train).predict(images(2, 9))
    b = small(name, seed=3).fit(train).predict(images(2, 9))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


@pytest.mark.parametrize("name", list_models())
def test_checkpoint_round_trip_gives_identical_outputs(name: str, train, tmp_path) -> None:
    m = small(name).fit(train)
    save_checkpoint(tmp_path, Checkpoint(m, PreprocessConfig(SIZE)))
    loaded = load_checkpoint(tmp_path)
    x = images(2, 11)
    a, b = m.predict(x), loaded.model.predict(x)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    assert loaded.model.get_config() == m.get_config()
    assert loaded.preprocessing == PreprocessConfig(SIZE)


@pytest.mark.parametrize("name", list_models())
def test_bad_inputs(name: str) -> None:
    m = small(name)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        m.fit([torch.rand(2, 1, SIZE, SIZE)])
    with pytest.raises(ConfigError, match="divisible by"):
        m.fit([torch.rand(2, 3, SIZE + 8, SIZE)])
    with pytest.raises(ValueError, match="no images"):
        m.fit([])


def test_unknown_layer_suggests() -> None:
    with pytest.raises(ConfigError, match="layer3"):
        create_model("patchcore", backbone="resnet18", layers=("layer2", "layr3"), pretrained=False)


def test_patchcore_memory_bank_cap_and_ratio(train) -> None:
    m = create_model("patchcore", backbone="resnet18", pretrained=False, coreset_ratio=0.5, max_bank_size=10, random_state=0)
    m.fit(train)
    assert m.memory_bank_.shape[0] == 10
    assert m.support_idx_.shape == (10, 9)
    # every bank entry is its own first neighbour
    assert torch.equal(m.support_idx_[:, 0], torch.arange(10))


def test_patchcore_scores_match_naive_cdist(train) -> None:
    """Patch scores and the re-weighted image score against a direct, slow formulation."""
    m = create_model("patchcore", backbone="resnet18", pretrained=False, coreset_ratio=0.25, random_state=0).fit(train)
    x = images(2, 21)
    with torch.no_grad():
        score, amap = m(x)
        emb = m.embed(x).double()
        n, d, h, w = emb.shape
        bank = m.memory_bank_.double()
        for i in range(n):
            patches = emb[i].permute(1, 2, 0).reshape(-1, d)
            dist = torch.cdist(patches, bank)
            min_d, nn_idx = dist.min(dim=1)
            j = int(min_d.argmax())
            nn = bank[nn_idx[j]]
            k = min(9, bank.shape[0])
            support = torch.cdist(nn[None], bank)[0].topk(k, largest=False).indices
            dsup = torch.cdist(patches[j][None], bank[support])[0]
            weight = 1 - torch.softmax(dsup, 0)[0]
            assert abs(float(weight * min_d[j]) - float(score[i])) <= 1e-3 * float(score[i])


def test_padim_mahalanobis_against_numpy(train) -> None:
    import numpy as np

    m = create_model("padim", backbone="resnet18", pretrained=False, n_features=20, random_state=0).fit(train)
    x = images(1, 4)
    with torch.no_grad():
        emb = torch.cat([m.embed(t) for t in train]).double().numpy()  # (N, C, h, w)
        test = m.embed(x).double().numpy()[0]
    n, c, h, w = emb.shape
    dist = np.zeros((h, w))
    for yy in range(h):
        for xx in range(w):
            v = emb[:, :, yy, xx]
            cov = np.cov(v, rowvar=False) + 0.01 * np.eye(c)
            diff = test[:, yy, xx] - v.mean(0)
            dist[yy, xx] = np.sqrt(diff @ np.linalg.inv(cov) @ diff)
    got = m.gaussian.mahalanobis(torch.from_numpy(test[None]).float())[0].numpy()
    np.testing.assert_allclose(got, dist, rtol=2e-3, atol=2e-3)


def test_fit_names_an_unreadable_training_image(tmp_path) -> None:
    from edgeanomaly.data import generate_synthetic_dataset, load_dataset
    from edgeanomaly.errors import DatasetError
    from edgeanomaly.models._fit import fit_model

    generate_synthetic_dataset(tmp_path, ["metal"], n_train=3, n_test=1, size=64)
    bad = tmp_path / "metal" / "train" / "good" / "001.png"
    bad.write_bytes(bad.read_bytes()[:100])  # truncated
    ds = load_dataset(tmp_path / "metal")
    with pytest.raises(DatasetError, match="001.png"):
        fit_model(small("patchcore"), ds.train, PreprocessConfig(SIZE))
    with pytest.raises(DatasetError, match="training split is empty"):
        fit_model(small("patchcore"), [], PreprocessConfig(SIZE))


def test_patchcore_memory_budget_keeps_a_uniform_subsample() -> None:
    # resnet18 layer2+3: 384 dims = 1536 bytes per patch; a budget of 100 patches.
    budget_mb = 100 * 1536 / 2**20
    m = create_model("patchcore", backbone="resnet18", pretrained=False, coreset_ratio=1.0,
                     max_train_memory_mb=budget_mb, random_state=0)
    batches = [images(4, 1), images(4, 2)]  # 8 images x 8x8 patches = 512 patches
    m.fit(batches)
    with torch.no_grad():
        emb = torch.cat([m.embed(b) for b in batches])
    everything = emb.permute(0, 2, 3, 1).reshape(-1, emb.shape[1])
    # 512 > 256 > 128 > 100 >= 64: every 8th patch in fitting order is kept.
    assert m.memory_bank_.shape[0] == 64
    torch.testing.assert_close(m.memory_bank_, everything[::8], rtol=0, atol=0)
    with pytest.raises(ConfigError, match="max_train_memory_mb"):
        create_model("patchcore", backbone="resnet18", pretrained=False, max_train_memory_mb=0)


def test_fit_on_a_folder_of_normal_images_calibrates_on_a_holdout(tmp_path) -> None:
    import cv2
    import numpy as np

    from edgeanomaly.data import render_sample
    from edgeanomaly.models._pipeline import fit_run

    folder = tmp_path / "ok"
    folder.mkdir()
    for i in range(20):
        img, _, _ = render_sample("fabric", "good", i, size=64, split="train")
        cv2.imwrite(str(folder / f"{i:02d}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    result = fit_run("dfm", folder, tmp_path / "run", image_size=64, backbone="resnet18", pretrained=False)
    cal = result.checkpoint.calibration
    assert result.checkpoint.info["n_train"] == 18 and result.checkpoint.info["n_calibration_holdout"] == 2
    assert cal["method"] == "quantile" and cal["source"]["n_images"] == 2
    assert "holdout" in cal["source"]["split"]
    assert not result.checkpoint.metrics  # no labels, no metrics
    assert np.isfinite(cal["image_threshold"])


# ----------------------------------------------------------------- the public contract (issue 10.6)
@pytest.mark.parametrize("name", list_models())
def test_fit_embeddings_equals_fit(name: str, train) -> None:
    # The INT8 export refits heads through fit_embeddings: on the model's own embeddings it
    # must give exactly what fit gives.
    m = small(name).fit(train)
    if not m.int8_head_refit:
        pytest.skip(f"{name} trains its head")
    with torch.no_grad():
        embeddings = [m.embed(b) for b in train]
    refit = small(name).fit_embeddings(embeddings)
    assert refit.n_train_images_ == m.n_train_images_ == 8
    x = images(2, 13)
    a, b = m.predict(x), refit.predict(x)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_export_uses_only_the_public_model_contract() -> None:
    import ast
    from pathlib import Path

    import edgeanomaly.export as export

    private = {"_reset", "_update", "_finish", "_take_rows", "_fitted_tensors"}
    for path in Path(export.__file__).parent.glob("*.py"):
        calls = {n.attr for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Attribute)}
        assert not calls & private, (path.name, calls & private)


def test_old_checkpoints_keep_the_settings_they_were_fitted_with(train, tmp_path) -> None:
    import json

    m = create_model("dfm", backbone="resnet18", pretrained=False, random_state=0, score_type="nll").fit(train)
    save_checkpoint(tmp_path, Checkpoint(m, PreprocessConfig(SIZE)))
    cfg = tmp_path / "checkpoint.json"
    doc = json.loads(cfg.read_text())
    del doc["model"]["params"]["score_type"]  # as written before the setting existed
    cfg.write_text(json.dumps(doc))
    loaded = load_checkpoint(tmp_path).model
    assert loaded.score_type == "nll"
    x = images(2, 11)
    torch.testing.assert_close(loaded.predict(x)["pred_score"], m.predict(x)["pred_score"], rtol=0, atol=0)


class _TrainedForEpochs:
    """Built inside the test: a model whose head is trained by SGD for several epochs, as a
    later EfficientAD or FastFlow would be; it plugs into the contract without a registry entry."""

    @staticmethod
    def make(epochs: int):
        import torch.nn.functional as F

        from edgeanomaly.models._base import AnomalyModel

        class TrainedHead(AnomalyModel):
            name = "trained-head-example"
            task = "classification"
            output_names = ("pred_score",)
            int8_head_refit = False

            def __init__(self) -> None:
                super().__init__("resnet18", ("layer1",), False, None, None, 0, {"epochs": epochs})
                self.head = torch.nn.Linear(64, 64)
                self.register_buffer("trained", torch.empty(0))
                self.passes = 0
                self.losses: list[float] = []

            def embed(self, images: torch.Tensor) -> torch.Tensor:
                return F.adaptive_avg_pool2d(self.feature_extractor(images)["layer1"], 1).flatten(1)

            def fit(self, batches):
                opt = torch.optim.SGD(self.head.parameters(), lr=0.5)
                for _ in range(epochs):
                    self.passes += 1
                    total = 0.0
                    for batch in batches:
                        with torch.no_grad():
                            e = self.embed(batch)
                        loss = (self.head(e) - e).pow(2).mean()
                        opt.zero_grad()
                        loss.backward()
                        opt.step()
                        total += float(loss.detach())
                    self.losses.append(total)
                self.trained = torch.ones(1)
                return self

            def _finish(self) -> None:
                pass

            def _fitted_tensors(self):
                return (self.trained,)

            def forward(self, images: torch.Tensor):
                e = self.embed(images)
                return ((self.head(e) - e).pow(2).sum(dim=1),)

        return TrainedHead()


def test_a_model_trained_for_several_epochs_plugs_into_the_fit_pipeline(tmp_path) -> None:
    from edgeanomaly.data import generate_synthetic_dataset, load_dataset
    from edgeanomaly.models._fit import fit_model, predict_samples

    generate_synthetic_dataset(tmp_path, ["fabric"], n_train=8, n_test=2, seed=0, size=64)
    ds = load_dataset(tmp_path, category="fabric")
    m = _TrainedForEpochs.make(epochs=3)
    seen: list[int] = []
    fit_model(m, ds.train, PreprocessConfig(SIZE), batch_size=4, progress=seen.append)
    assert m.passes == 3 and len(m.losses) == 3 and m.losses[-1] < m.losses[0]
    assert sum(seen) == 8  # progress reports the first pass only
    out = predict_samples(m, ds.test, PreprocessConfig(SIZE))
    assert out.scores.shape == (len(ds.test),) and out.maps is None
    with pytest.raises(TypeError, match="trains its head"):
        m.fit_embeddings([torch.zeros(2, 64)])


def test_dfm_and_dfkde_score_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="Expected score_type in \\['fre', 'nll'\\], got 'mse'"):
        create_model("dfm", backbone="resnet18", pretrained=False, score_type="mse")
    with pytest.raises(ConfigError, match="residual=False with covariance='full'"):
        create_model("dfkde", backbone="resnet18", pretrained=False, covariance="full")
    m = create_model("dfkde", backbone="resnet18", pretrained=False, covariance="full", residual=False)
    assert m.get_config()["params"]["covariance"] == "full"
    # bool("False") is True: --param residual=False read as the string kept the residual term on
    with pytest.raises(ConfigError, match="Expected residual as true or false, got 'False'"):
        create_model("dfkde", backbone="resnet18", pretrained=False, residual="False")


def _kinded_settings():
    import inspect

    from edgeanomaly.models import model_class

    wrong = {"bool": "yes", "int": 2.5, "float": "abc"}  # a string for a flag or a number; a fraction for a count
    for name in list_models():
        for key, p in inspect.signature(model_class(name).__init__).parameters.items():
            kinds = {k.strip() for k in str(p.annotation).split("|")}
            main = kinds - {"None"}
            if len(main) == 1 and main <= set(wrong):
                yield name, key, wrong[main.pop()]


@pytest.mark.parametrize("made_by", ["create_model", "the class"])
@pytest.mark.parametrize("name, key, value", list(_kinded_settings()))
def test_a_setting_of_the_wrong_kind_is_a_config_error_naming_it(name: str, key: str, value, made_by: str) -> None:
    # --param coreset_ratio=abc ended in "ValueError: could not convert string to float" with a
    # traceback, regularization=abc in a TypeError; num_neighbors=9.5 was taken as 9. The class
    # itself checks too: PatchCore(num_neighbors=9.5) was taken as 9, PaDiM(n_features="100")
    # and PatchCore(pretrained="no") (a true string: pretrained weights) were accepted.
    from edgeanomaly.models import model_class

    make = (lambda **kw: create_model(name, **kw)) if made_by == "create_model" else model_class(name)
    with pytest.raises(ConfigError, match=f"Expected {key} as "):
        make(**{"backbone": "resnet18", "pretrained": False, key: value})


def test_a_misspelt_setting_given_to_the_class_names_the_close_one() -> None:
    from edgeanomaly.models import PatchCore

    with pytest.raises(ConfigError, match="'coresetratio' \\(did you mean 'coreset_ratio'\\?\\)") as info:
        PatchCore(backbone="resnet18", pretrained=False, coresetratio=0.1)
    assert isinstance(info.value, TypeError)
    with pytest.raises(ConfigError, match="Expected coreset_ratio as a number, got 'abc'"):  # positional ones by their names
        PatchCore("resnet18", None, "abc", pretrained=False)


def test_a_registered_class_of_its_own_is_checked_too() -> None:
    # a plugin's model need not subclass AnomalyModel to be registered; create_model checked its
    # settings before the check moved into AnomalyModel's constructors, and still does
    from edgeanomaly.models import register_model, unregister_model

    class Plain:
        name = "plain-kind-check"

        def __init__(self, k: int = 3, flag: bool = False) -> None:
            self.k, self.flag = k, flag

    register_model(Plain)
    try:
        assert create_model("plain-kind-check", k=4).k == 4
        with pytest.raises(ConfigError, match="Expected flag as true or false, got 'no'"):
            create_model("plain-kind-check", flag="no")
        with pytest.raises(ConfigError, match="'kk' \\(did you mean 'k'\\?\\)"):
            Plain(kk=1)
    finally:
        unregister_model("plain-kind-check")


def test_settings_of_the_right_kind_pass_the_kind_check() -> None:
    # an int where a float is declared, None where None is allowed
    create_model("patchcore", backbone="resnet18", pretrained=False, coreset_ratio=1, max_bank_size=None, blur_sigma=4)
    create_model("dfm", backbone="resnet18", pretrained=False, pca_level=8)
    # NumPy's scalars from a parameter sweep are numbers too
    import numpy as np

    create_model("patchcore", backbone="resnet18", pretrained=False, num_neighbors=np.int64(3), coreset_ratio=np.float32(0.5))
    for name in list_models():  # the seed too (the kind check let it through, then the model refused it), kept as an int
        params = create_model(name, backbone="resnet18", pretrained=False, random_state=np.int64(3)).get_config()["params"]
        assert type(params["random_state"]) is int and params["random_state"] == 3
    with pytest.raises(ConfigError, match="Expected pca_level as a number, got 'abc'"):
        create_model("dfm", backbone="resnet18", pretrained=False, pca_level="abc")  # failed only in fit, after the features


@pytest.mark.parametrize("name, typo, meant", [("patchcore", "coresetratio", "coreset_ratio"),
                                               ("fastflow", "flowsteps", "flow_steps"),
                                               ("efficientad", "epoch", "epochs")])
def test_a_misspelt_setting_is_a_config_error_with_the_close_name(name: str, typo: str, meant: str) -> None:
    # fit --param coresetratio=0.1 ended in a TypeError traceback; it is still a TypeError for Python callers
    with pytest.raises(ConfigError, match=f"'{typo}' \\(did you mean '{meant}'\\?\\)") as info:
        create_model(name, backbone="resnet18", pretrained=False, **{typo: 1})
    assert isinstance(info.value, TypeError)


def test_fit_cli_says_which_setting_is_misspelt(tmp_path) -> None:
    from click.testing import CliRunner

    from edgeanomaly.cli import main

    r = CliRunner().invoke(main, ["fit", "--model", "patchcore", "--data", str(tmp_path), "--param", "coresetratio=0.1",
                                  "--out", str(tmp_path / "run")])
    assert r.exit_code == 1 and "did you mean 'coreset_ratio'?" in r.output, r.output
    assert isinstance(r.exception, SystemExit), r.exception  # a ClickException, not a TypeError from the model
