"""Flow blocks: inverse to 1e-5, log-determinant against autograd's Jacobian, soft clamping,
seeded and deterministic, ONNX Runtime and OpenVINO parity, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edgeanomaly.components import AffineCouplingBlock, FlowSequence, fastflow_blocks
from edgeanomaly.errors import ConfigError


def _randomise(module: nn.Module, seed: int = 0, scale: float = 0.5) -> nn.Module:
    """Non-trivial parameters everywhere (the global affine starts at identity)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * scale)
    return module


@pytest.mark.parametrize("channels", [2, 5, 8])
@pytest.mark.parametrize("dtype, scale, atol", [
    (torch.float32, None, 1e-5),  # as initialised, eight steps
    (torch.float32, 0.1, 1e-5),  # trained-like parameters
    # large random parameters amplify values ~600x over 4 steps: float32 rounding then shows
    # (4e-2 measured), float64 shows that the inverse itself is exact
    (torch.float64, 0.5, 1e-9),
])
def test_inverse_recovers_the_input(channels: int, dtype: torch.dtype, scale: float | None, atol: float) -> None:
    flow = fastflow_blocks(channels, steps=8 if scale is None else 4, random_state=1)
    if scale is not None:
        _randomise(flow, scale=scale)
    flow = flow.to(dtype)
    x = torch.randn(3, channels, 6, 7, generator=torch.Generator().manual_seed(2), dtype=dtype)
    with torch.no_grad():
        z, _ = flow(x)
        back = flow.inverse(z)
    assert not torch.allclose(z, x, atol=1e-2)  # it did transform
    torch.testing.assert_close(back, x, rtol=0, atol=atol)


@pytest.mark.parametrize("channels, conv3x3_only", [(3, False), (4, True)])
def test_log_det_equals_autograd_jacobian(channels: int, conv3x3_only: bool) -> None:
    """The exact log|det J| against the Jacobian autograd builds of one flattened sample."""
    flow = _randomise(fastflow_blocks(channels, steps=3, conv3x3_only=conv3x3_only, random_state=3)).double()
    h, w = 3, 2
    x = torch.randn(2, channels, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    _, logdet = flow(x)
    for i in range(x.shape[0]):
        def f(flat: torch.Tensor) -> torch.Tensor:
            return flow(flat.view(1, channels, h, w))[0].reshape(-1)

        jac = torch.autograd.functional.jacobian(f, x[i].reshape(-1))
        sign, expected = torch.linalg.slogdet(jac)
        assert sign > 0
        torch.testing.assert_close(logdet[i], expected, rtol=1e-9, atol=1e-9)


def test_soft_clamping_bounds_the_log_scale() -> None:
    block = AffineCouplingBlock(4, clamp=1.5, random_state=0)
    with torch.no_grad():
        for p in block.subnet.parameters():
            p.fill_(50.0)  # the subnet asks for an enormous scale
        x = torch.ones(1, 4, 2, 2)
        y, logdet = block(x)
    assert torch.isfinite(y).all()
    # two changed channels of 2x2 positions, each |s| <= clamp (tanh rounds to 1 in float32)
    assert 0 < float(logdet) <= 8 * 1.5
    # the shift t is huge too: float32 keeps ~7 digits of it
    torch.testing.assert_close(block.inverse(y), x, rtol=0, atol=1e-6 * float(y.abs().max()))


def test_seeded_and_deterministic() -> None:
    a, b, c = (fastflow_blocks(6, steps=2, random_state=s) for s in (7, 7, 8))
    x = torch.randn(2, 6, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(a(x)[0], b(x)[0], rtol=0, atol=0)
        assert not torch.allclose(a(x)[0], c(x)[0])
    assert [list(blk.perm) for blk in a.blocks] == [list(blk.perm) for blk in b.blocks]
    assert sorted(a.blocks[0].perm.tolist()) == list(range(6))  # a permutation
    torch.testing.assert_close(a.blocks[0].perm[a.blocks[0].inverse_perm], torch.arange(6))


def test_sequence_log_det_is_the_sum_of_its_blocks() -> None:
    flow = _randomise(fastflow_blocks(4, steps=3, random_state=0))
    x = torch.randn(2, 4, 3, 3)
    with torch.no_grad():
        total = torch.zeros(2)
        y = x
        for block in flow.blocks:
            y, step = block(y)
            total += step
        z, logdet = flow(x)
    torch.testing.assert_close(z, y)
    torch.testing.assert_close(logdet, total)


def _export(flow: nn.Module, x: torch.Tensor, path) -> None:
    with torch.no_grad():
        torch.onnx.export(flow, (x,), str(path), input_names=["x"], output_names=["z", "log_jac_det"],
                          dynamic_axes={"x": {0: "n"}, "z": {0: "n"}, "log_jac_det": {0: "n"}}, dynamo=False)


def test_exports_to_onnx_runtime_and_openvino(tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime")
    ov = pytest.importorskip("openvino")
    flow = _randomise(fastflow_blocks(6, steps=4, random_state=5), scale=0.2).eval()
    gen = torch.Generator().manual_seed(6)
    path = tmp_path / "flow.onnx"
    _export(flow, torch.randn(1, 6, 8, 8, generator=gen), path)
    x = torch.randn(3, 6, 8, 8, generator=gen)  # another batch size than traced
    with torch.no_grad():
        z, logdet = (t.numpy() for t in flow(x))
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    ov_out = compiled(x.numpy())
    for z_got, ld_got in ((got[0], got[1]), (ov_out["z"], ov_out["log_jac_det"])):
        np.testing.assert_allclose(z_got, z, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ld_got, logdet, rtol=1e-5, atol=1e-4)


def test_bad_inputs() -> None:
    with pytest.raises(ConfigError, match="channels >= 2"):
        AffineCouplingBlock(1)
    with pytest.raises(ConfigError, match="clamp > 0"):
        AffineCouplingBlock(4, clamp=0)
    with pytest.raises(ConfigError, match="steps >= 1"):
        fastflow_blocks(4, steps=0)
    with pytest.raises(ConfigError, match="at least one flow block"):
        FlowSequence([])
    with pytest.raises(TypeError, match="random_state"):
        AffineCouplingBlock(4, random_state="seed")  # type: ignore[arg-type]
    block = AffineCouplingBlock(4, random_state=0)
    with pytest.raises(ValueError, match=r"Expected x of shape \(N, 4, H, W\), got \(2, 3, 5, 5\)"):
        block(torch.zeros(2, 3, 5, 5))
    with pytest.raises(ValueError, match=r"got \(4, 5, 5\)"):
        block.inverse(torch.zeros(4, 5, 5))
    with pytest.raises(TypeError, match="torch.Tensor"):
        block(np.zeros((1, 4, 2, 2)))  # type: ignore[arg-type]


def test_coupling_scales_the_subnet_output_by_a_tenth_as_freia() -> None:
    """FrEIA's AllInOneBlock (anomalib's FastFlow) multiplies the subnet's output ``a`` by 0.1
    before use: ``s = clamp * tanh(0.1 a_s)``, ``t = 0.1 a_t``. Without it the coupling starts
    ten times steeper and FastFlow over-fits (held-out loss rose after ~60 epochs on hazelnut)."""
    block = _randomise(AffineCouplingBlock(6, clamp=2.0, random_state=0), seed=3, scale=1.0)
    x = torch.randn(2, 6, 3, 3, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        y, logdet = block(x)
        x1, x2 = x[:, :3], x[:, 3:]
        a = 0.1 * block.subnet(x1)
        s = 2.0 * torch.tanh(a[:, :3])
        coupled = torch.cat([x1, x2 * torch.exp(s) + a[:, 3:]], dim=1)
        expected = (coupled * torch.exp(block.log_scale).view(1, -1, 1, 1) + block.offset.view(1, -1, 1, 1))[:, block.perm]
        expected_logdet = s.sum(dim=(1, 2, 3)) + 9 * block.log_scale.sum()
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logdet, expected_logdet, rtol=1e-5, atol=1e-5)
