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


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads ru_maxrss and /proc/self/statm (Linux)")
def test_taking_the_rows_does_not_hold_them_twice() -> None:
    """400 MiB of rows in 10 MiB batches (PatchCore's batch of 16 images at 256 px): joining
    them into one tensor may add about one block, not another copy of the rows. The same
    script on a plain list joined batch by batch (the code before) grew the peak by 390 MiB."""
    code = textwrap.dedent(
        """
        import json, os, resource, torch
        from edgeanomaly.models._rowstore import RowStore
        torch.set_num_threads(1)
        page = os.sysconf("SC_PAGE_SIZE")
        def rss():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * page
        store = RowStore()
        batch = 16 * 1024
        for i in range(40):
            # As in a fit: each batch's rows are copied out of a temporary that is then freed
            # (after the first such free, glibc serves 10 MiB blocks from its heap, which a
            # later free does not give back to the system).
            tmp = torch.full((batch, 160), float(i))
            store.append(tmp.clone())
            del tmp
        before = rss()
        out = store.take()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        assert out.shape == (40 * batch, 160) and float(out[-1, 0]) == 39.0
        print(json.dumps({"before": before, "peak": peak, "rows": out.numel() * 4}))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    grew = got["peak"] - got["before"]
    assert grew < 0.25 * got["rows"], f"joining {got['rows'] / 2**20:.0f} MiB of rows grew the peak by {grew / 2**20:.0f} MiB"
