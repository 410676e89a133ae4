"""GaussianBlur2d against OpenCV, its ONNX export; DynamicBufferModule state-dict loading."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edgeanomaly.components import DynamicBufferModule, GaussianBlur2d
from edgeanomaly.components._blur import gaussian_kernel1d, kernel_size_for_sigma
from edgeanomaly.errors import ConfigError

cv2 = pytest.importorskip("cv2")


# --- GaussianBlur2d ------------------------------------------------------------------------


@pytest.mark.parametrize(("sigma", "size"), [(0.5, 5), (1.0, 9), (2.5, 21), (4.0, 33)])
def test_kernel_size_from_sigma(sigma: float, size: int) -> None:
    assert kernel_size_for_sigma(sigma) == size
    assert GaussianBlur2d(sigma).kernel_size == size


def test_kernel_is_normalised_and_symmetric() -> None:
    k = gaussian_kernel1d(4.0, 33)
    assert k.shape == (33,) and abs(float(k.sum()) - 1.0) < 1e-6
    assert torch.equal(k, k.flip(0)) and int(k.argmax()) == 16


@pytest.mark.parametrize("sigma", [1.0, 2.5, 4.0])
def test_matches_opencv_with_reflect_101_borders(sigma: float) -> None:
    rng = np.random.default_rng(0)
    image = rng.random((48, 40), dtype=np.float32) * 10  # not square: catches an H/W mix-up
    size = kernel_size_for_sigma(sigma)
    expected = cv2.GaussianBlur(image, (size, size), sigmaX=sigma, sigmaY=sigma,
                                borderType=cv2.BORDER_REFLECT_101)
    with torch.inference_mode():
        got = GaussianBlur2d(sigma)(torch.from_numpy(image)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)
    # The border mode matters: OpenCV's BORDER_REFLECT (edge repeated) is a different result.
    other = cv2.GaussianBlur(image, (size, size), sigma, borderType=cv2.BORDER_REFLECT)
    assert np.abs(got - other).max() > 1e-3


def test_explicit_kernel_size_matches_opencv() -> None:
    image = np.random.default_rng(1).random((32, 32), dtype=np.float32)
    expected = cv2.GaussianBlur(image, (7, 7), 3.0, borderType=cv2.BORDER_REFLECT_101)
    with torch.inference_mode():
        got = GaussianBlur2d(3.0, kernel_size=7)(torch.from_numpy(image)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_channels_are_blurred_independently() -> None:
    x = torch.rand(2, 3, 24, 24)
    blur3, blur1 = GaussianBlur2d(2.0, channels=3), GaussianBlur2d(2.0)
    with torch.inference_mode():
        out = blur3(x)
        for c in range(3):
            torch.testing.assert_close(out[:, c : c + 1], blur1(x[:, c : c + 1]))


def test_constant_map_stays_constant_and_shape_is_kept() -> None:
    x = torch.full((1, 1, 20, 30), 0.7)
    out = GaussianBlur2d(4.0)(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out, x)


def test_blur_has_no_state_dict_entries() -> None:
    assert GaussianBlur2d(4.0).state_dict() == {}


@pytest.mark.parametrize("kwargs", [{"sigma": 0.0}, {"sigma": -1.0}, {"sigma": float("nan")},
                                    {"sigma": 1.0, "kernel_size": 4}, {"sigma": 1.0, "channels": 0}])
def test_bad_settings_are_config_errors(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        GaussianBlur2d(**kwargs)


def test_blur_exports_to_onnx(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    blur = GaussianBlur2d(4.0)
    path = tmp_path / "blur.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # legacy exporter deprecation notice
        torch.onnx.export(blur, (torch.rand(1, 1, 64, 64),), str(path), dynamo=False, opset_version=17,
                          input_names=["map"], output_names=["blurred"],
                          dynamic_axes={"map": {0: "batch"}, "blurred": {0: "batch"}})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.rand(3, 1, 64, 64)
    (got,) = session.run(None, {"map": x.numpy()})
    with torch.inference_mode():
        np.testing.assert_allclose(got, blur(x).numpy(), atol=1e-5)


# --- DynamicBufferModule ----------------------------------------------------------------------


class _Bank(DynamicBufferModule):
    def __init__(self, dim: int = 4) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, dim)
        self.register_buffer("memory_bank", torch.empty(0, dim))
        self.register_buffer("counts", torch.zeros(0, dtype=torch.long))
        self.register_buffer("scratch", torch.zeros(3), persistent=False)


class _Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = _Bank()


def test_unfitted_module_loads_a_fitted_state_dict() -> None:
    fitted = _Bank()
    fitted.memory_bank = torch.randn(10, 4)
    fitted.counts = torch.arange(10)
    fresh = _Bank()
    fresh.load_state_dict(fitted.state_dict(), strict=True)
    assert torch.equal(fresh.memory_bank, fitted.memory_bank)
    assert torch.equal(fresh.counts, fitted.counts) and fresh.counts.dtype == torch.long
    assert torch.equal(fresh.proj.weight, fitted.proj.weight)


def test_nested_dynamic_module_and_dtype_kept() -> None:
    fitted = _Model()
    fitted.head.memory_bank = torch.randn(6, 4, dtype=torch.float64)
    fresh = _Model()
    fresh.load_state_dict(fitted.state_dict())
    assert fresh.head.memory_bank.shape == (6, 4)
    assert fresh.head.memory_bank.dtype == torch.float32  # the module's dtype, not the file's
    torch.testing.assert_close(fresh.head.memory_bank, fitted.head.memory_bank.float())


def test_shrinking_and_refitting_also_work() -> None:
    big, small = _Bank(), _Bank()
    big.memory_bank = torch.randn(8, 4)
    small.memory_bank = torch.randn(2, 4)
    big.load_state_dict(small.state_dict())
    assert torch.equal(big.memory_bank, small.memory_bank)


def test_parameters_keep_strict_shape_checks() -> None:
    fitted = _Bank(dim=4)
    with pytest.raises(RuntimeError, match="size mismatch"):
        _Bank(dim=5).load_state_dict(fitted.state_dict())


def test_missing_buffer_is_still_reported() -> None:
    state = _Bank().state_dict()
    del state["memory_bank"]
    with pytest.raises(RuntimeError, match="memory_bank"):
        _Bank().load_state_dict(state)
    result = _Bank().load_state_dict(state, strict=False)
    assert result.missing_keys == ["memory_bank"]


def test_plain_module_would_fail_which_is_why_this_exists() -> None:
    class Plain(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("memory_bank", torch.empty(0, 4))

    fitted = Plain()
    fitted.memory_bank = torch.randn(3, 4)
    with pytest.raises(RuntimeError, match="size mismatch"):
        Plain().load_state_dict(fitted.state_dict())
