"""The training rows a one-pass model keeps during fit (issue 22: a 2,000-image PatchCore fit
peaked at 4.4 GB, the rows being held twice while they were joined into one tensor)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from edgeanomaly.models._rowstore import RowStore


def test_rows_come_back_in_order_across_blocks() -> None:
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(n, 7, generator=g) for n in (5, 1, 13, 0, 8, 30)]
    store = RowStore(block_bytes=10 * 7 * 4)  # 10 rows per block: batches straddle blocks
    for b in batches:
        store.append(b)
    assert len(store) == sum(b.shape[0] for b in batches)
    out = store.take()
    torch.testing.assert_close(out, torch.cat(batches), rtol=0, atol=0)
    assert len(store) == 0


def test_keep_filters_rows_by_a_mask_over_the_order() -> None:
    rows = torch.arange(50, dtype=torch.float32)[:, None].repeat(1, 3)
    store = RowStore(block_bytes=8 * 3 * 4)
    for start in range(0, 50, 7):
        store.append(rows[start : start + 7])
    keep = torch.arange(50) % 4 == 0
    store.keep(keep)
    assert len(store) == int(keep.sum())
    torch.testing.assert_close(store.take(), rows[keep], rtol=0, atol=0)


def test_one_batch_larger_than_a_block() -> None:
    x = torch.randn(100, 4)
    store = RowStore(block_bytes=16)
    store.append(x)
    store.append(x[:3])
    torch.testing.assert_close(store.take(), torch.cat([x, x[:3]]), rtol=0, atol=0)


def test_mismatched_rows_are_refused() -> None:
    store = RowStore()
    store.append(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="Expected rows of shape"):
        store.append(torch.zeros(2, 4))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status (Linux)")
def test_taking_the_rows_does_not_hold_them_twice() -> None:
    """400 MiB of rows in 10 MiB batches (PatchCore's batch of 16 images at 256 px): joining
    them into one tensor may add about one block, not another copy of the rows. The same
    script on a plain list joined batch by batch (the code before) grew the peak by 390 MiB."""
    code = textwrap.dedent(
        """
        import json, torch
        from edgeanomaly.models._rowstore import RowStore
        torch.set_num_threads(1)
        def status(key):
            # This process's own resident and peak resident memory. Not ru_maxrss: Linux
            # carries the parent's peak into a child's ru_maxrss across exec, so under a
            # large pytest process it read the parent's peak (CI: "grew by 1386 MiB").
            with open("/proc/self/status") as f:
                return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))
        store = RowStore()
        batch = 16 * 1024
        for i in range(40):
            # As in a fit: each batch's rows are copied out of a temporary that is then freed
            # (after the first such free, glibc serves 10 MiB blocks from its heap, which a
            # later free does not give back to the system).
            tmp = torch.full((batch, 160), float(i))
            store.append(tmp.clone())
            del tmp
        before = status("VmRSS")
        out = store.take()
        peak = status("VmHWM")
        assert out.shape == (40 * batch, 160) and float(out[-1, 0]) == 39.0
        print(json.dumps({"before": before, "peak": peak, "rows": out.numel() * 4}))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    grew = got["peak"] - got["before"]
    assert grew < 0.25 * got["rows"], f"joining {got['rows'] / 2**20:.0f} MiB of rows grew the peak by {grew / 2**20:.0f} MiB"
