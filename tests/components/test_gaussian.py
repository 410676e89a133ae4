"""MultivariateGaussian against a NumPy per-location oracle; batching; contract; export."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeanomaly.components import MultivariateGaussian
from edgeanomaly.errors import ConfigError, NotFittedError


def _data(n: int = 40, c: int = 5, h: int = 3, w: int = 4, seed: int = 0, offset: float = 0.0,
          dtype: torch.dtype = torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, c, h, w, generator=g, dtype=torch.float64)
    mixing = torch.randn(c, c, generator=g, dtype=torch.float64)
    return (torch.einsum("nchw,cd->ndhw", base, mixing) + offset).to(dtype)


def _oracle(train: np.ndarray, test: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-location np.cov + inverse and a loop over images and locations."""
    n, c, h, w = train.shape
    flat = train.reshape(n, c, h * w)
    mean = flat.mean(axis=0)
    covs = [np.cov(flat[:, :, l], rowvar=False) + eps * np.eye(c) for l in range(h * w)]
    inv = np.stack([np.linalg.inv(cov) for cov in covs])
    dist = np.zeros((test.shape[0], h, w))
    for i in range(test.shape[0]):
        for l in range(h * w):
            delta = test[i].reshape(c, h * w)[:, l] - mean[:, l]
            dist[i, l // w, l % w] = np.sqrt(delta @ inv[l] @ delta)
    return mean, inv, dist


@pytest.mark.parametrize("eps", [0.01, 0.5])
def test_matches_numpy_oracle(eps: float) -> None:
    train, test = _data(), _data(6, seed=1)
    gauss = MultivariateGaussian(eps=eps).fit(train)
    mean, inv, dist = _oracle(train.numpy(), test.numpy(), eps)
    np.testing.assert_allclose(gauss.mean_.numpy(), mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gauss.inv_cov_.numpy(), inv, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(gauss.mahalanobis(test).numpy(), dist, rtol=1e-9)


def test_accurate_far_from_zero() -> None:
    # One-pass sums in float64 without the shift would lose digits here.
    train, test = _data(offset=1e6), _data(6, seed=1, offset=1e6)
    gauss = MultivariateGaussian().fit(train)
    _, inv, dist = _oracle(train.numpy(), test.numpy(), 0.01)
    np.testing.assert_allclose(gauss.inv_cov_.numpy(), inv, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(gauss(test).numpy(), dist, rtol=1e-6)


def test_float32_embeddings() -> None:
    train = _data(dtype=torch.float32)
    gauss = MultivariateGaussian().fit(train)
    assert gauss.mean_.dtype == torch.float32 and gauss.inv_cov_.dtype == torch.float32
    _, _, dist = _oracle(train.double().numpy(), train[:3].double().numpy(), 0.01)
    np.testing.assert_allclose(gauss(train[:3]).numpy(), dist, rtol=1e-4)


def test_batches_iterable_and_partial_fit_agree_with_one_tensor() -> None:
    train, test = _data(), _data(4, seed=1)
    whole = MultivariateGaussian().fit(train)
    batched = MultivariateGaussian().fit(b for b in train.split(7))
    partial = MultivariateGaussian()
    for b in train.split(1):  # a first batch of one image must work too
        assert partial.partial_fit(b) is partial
    for other in (batched, partial):
        assert other.n_samples_seen_ == 40
        assert torch.allclose(other.mean_, whole.mean_, rtol=1e-12, atol=1e-12)
        assert torch.allclose(other.inv_cov_, whole.inv_cov_, rtol=1e-9, atol=1e-10)
        assert torch.allclose(other(test), whole(test), rtol=1e-9)


def test_fit_starts_afresh() -> None:
    train = _data()
    gauss = MultivariateGaussian().partial_fit(_data(seed=5))
    gauss.fit(train)
    assert gauss.n_samples_seen_ == 40
    assert torch.equal(gauss.mean_, MultivariateGaussian().fit(train).mean_)


def test_fit_returns_self_and_is_deterministic() -> None:
    train = _data()
    gauss = MultivariateGaussian()
    assert gauss.fit(train) is gauss
    assert torch.equal(gauss(train[:3]), MultivariateGaussian().fit(train.clone())(train[:3]))


def test_unfitted_use_raises() -> None:
    with pytest.raises(NotFittedError, match="This MultivariateGaussian instance is not fitted yet"):
        MultivariateGaussian().mahalanobis(_data())
    with pytest.raises(NotFittedError, match="MultivariateGaussian"):
        MultivariateGaussian().partial_fit(_data(1))(_data(1))


def test_state_dict_round_trip_into_unfitted_instance() -> None:
    train = _data(c=24, dtype=torch.float32)
    gauss = MultivariateGaussian().fit(train)
    assert set(gauss.state_dict()) == {"mean_", "inv_cov_"}
    # Loaded buffers are contiguous; fitted ones must be too, or bmm sums in another order.
    assert all(t.is_contiguous() for t in gauss.state_dict().values())
    fresh = MultivariateGaussian()
    fresh.load_state_dict(gauss.state_dict())
    assert torch.equal(fresh(train[:5]), gauss(train[:5]))
    assert fresh.n_samples_seen_ is None


def test_mahalanobis_is_exportable() -> None:
    train = _data(dtype=torch.float32)
    gauss = MultivariateGaussian().fit(train)
    exported = torch.export.export(gauss, (train[:2],))
    assert torch.allclose(exported.module()(train[:2]), gauss(train[:2]))


@pytest.mark.parametrize("c", [1, 7, 12])
def test_upper_block_form_matches_oracle(c: int) -> None:
    """The form traced for export reads only the upper block triangle; same distances."""
    train, test = _data(c=c), _data(6, c=c, seed=1)
    gauss = MultivariateGaussian().fit(train)
    _, _, dist = _oracle(train.numpy(), test.numpy(), 0.01)
    n, _, h, w = test.shape
    delta = (test.reshape(n, c, h * w) - gauss.mean_).permute(2, 0, 1)
    sq = gauss._upper_quadratic(delta)
    np.testing.assert_allclose(sq.sqrt().t().reshape(n, h, w).numpy(), dist, rtol=1e-9)


def test_onnx_graph_stores_the_upper_block_triangle(tmp_path) -> None:
    """The ONNX exporter folds the upper blocks into initialisers: 60% of the inverse, not all."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from edgeanomaly.components._gaussian import UPPER_BLOCKS

    c, h, w = 20, 4, 5
    train = _data(c=c, h=h, w=w, dtype=torch.float32)
    gauss = MultivariateGaussian().fit(train)
    path = tmp_path / "g.onnx"
    with torch.no_grad():
        torch.onnx.export(gauss, (train[:2],), str(path), input_names=["x"], do_constant_folding=True, dynamo=False)
    stored = sum(int(np.prod(i.dims)) for i in onnx.load(str(path)).graph.initializer)
    full = h * w * c * c
    assert stored - c * h * w == full * (UPPER_BLOCKS + 1) // (2 * UPPER_BLOCKS)
    got = ort.InferenceSession(str(path)).run(None, {"x": train[2:4].numpy()})[0]
    np.testing.assert_allclose(got, gauss(train[2:4]).numpy(), rtol=1e-4)


def test_bad_inputs() -> None:
    with pytest.raises(TypeError, match="torch.Tensor"):
        MultivariateGaussian().fit(_data().numpy()[0])  # a 3-d array is iterable, but not of tensors
    with pytest.raises(TypeError, match="Tensor or an iterable"):
        MultivariateGaussian().fit(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"Expected embedding of shape \(N, C, H, W\), got \(40, 5, 12\)"):
        MultivariateGaussian().fit(_data().reshape(40, 5, 12))
    with pytest.raises(ValueError, match="at least 2 embeddings"):
        MultivariateGaussian().fit(_data(1))
    with pytest.raises(ValueError, match=r"like the previous batches, got \(2, 5, 4, 3\)"):
        MultivariateGaussian().fit([_data(3), _data(2, h=4, w=3)])
    with pytest.raises(ValueError, match="finite"):
        MultivariateGaussian().fit(torch.full((3, 2, 2, 2), float("inf")))
    with pytest.raises(ConfigError, match="eps"):
        MultivariateGaussian(eps=-1.0).fit(_data())
    gauss = MultivariateGaussian().fit(_data())
    with pytest.raises(ValueError, match=r"H\*W = 12, got \(2, 5, 4, 4\)"):
        gauss(_data(2, h=4, w=4))
    with pytest.raises(ValueError, match=r"Expected embedding of shape \(N, 5, H, W\)"):
        gauss(_data(2, c=4))


def test_finalize_memory_stays_near_the_sums() -> None:
    """PaDiM's fit peaked at 1.65 GB RSS against anomalib's 1.30 GB (issue 25): finalize held
    the float64 sums, a copy for the covariances, a temporary for the mean correction and the
    float64 inverses at once (4 x 328 MB at 4096 locations of 100 channels). It now works in
    place on the sums, in blocks of locations, into the float32 inverses.

    Measured as finalize's own peak above the RSS it starts from (the high-water mark reset
    just before it), with glibc's mmap threshold pinned at 1 MiB so that every large block goes
    back to the kernel when freed: the peak is then the live working set, the same on every
    run. Left to glibc's defaults the same code measured 130-257 MiB from one run to the next
    (freed temporaries of the accumulation kept or not for reuse), and a CI run failed."""
    import os
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import torch
        from edgeanomaly.components import MultivariateGaussian
        torch.set_num_threads(1)
        def status(key):
            # This process's own figures (KiB). Not ru_maxrss: Linux carries the parent's
            # peak into it across exec, and under a large pytest process both readings were
            # the parent's, so the test could not fail.
            with open("/proc/self/status") as f:
                return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))
        g = MultivariateGaussian(eps=0.01)
        g.reset()
        for seed in range(3):
            g.accumulate(torch.randn(8, 100, 64, 64, generator=torch.Generator().manual_seed(seed)))
        before = status("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS (Linux >= 4.0)
        g.finalize()
        print((status("VmHWM") - before) * 1024)
    """)
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(2**20)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    grown = int(out.stdout.strip().splitlines()[-1])
    inverses = 4096 * 100 * 100 * 4  # the float32 (L, C, C) inverses finalize returns, 156 MiB
    # the inverses and a block of float64 temporaries, not copies of the 312 MiB sums
    assert grown <= inverses + 24 * 2**20, f"finalize grew RSS by {grown / 2**20:.0f} MiB"
