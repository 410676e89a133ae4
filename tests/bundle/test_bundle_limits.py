"""Hostile bundle zips and manifests: bombs, damaged archives, absurd nesting.

Each case is refused with a message that names the member and the limit, before the disk or
the memory fills up, and leaves nothing behind in the temporary directory.
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from pathlib import Path

import pytest
from bundle_fakes import files, manifest

from edgeanomaly.bundle import read_bundle, write_bundle
from edgeanomaly.bundle._hashing import content_sha256
from edgeanomaly.errors import BundleError

BOMB = 64 << 20  # 64 MiB of zeros: bzip2 packs it into a few hundred bytes


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private $TMPDIR, to see what reading a zip extracts and what it leaves behind."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _repack(source: Path, dest: Path, replace: dict[str, bytes] | None = None, add: dict[str, bytes] | None = None,
            manifest_edit=None) -> Path:
    """Copy a bundle zip member by member, replacing or adding members (bzip2, like the reported bomb)."""
    replace, add = dict(replace or {}), dict(add or {})
    with zipfile.ZipFile(source) as zf, zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_BZIP2) as out:
        for name in zf.namelist():
            data = replace.pop(name, None)
            if data is None:
                data = zf.read(name)
            if name == "manifest.json" and manifest_edit is not None:
                document = json.loads(data)
                manifest_edit(document)
                document["manifest_sha256"] = content_sha256(document)
                data = json.dumps(document).encode()
            out.writestr(name, data)
        for name, data in add.items():
            out.writestr(name, data)
    return dest


def _du(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def packed(tmp_path: Path) -> Path:
    return write_bundle(tmp_path / "b.zip", manifest(), files())


def test_members_the_manifest_does_not_list_are_not_extracted(packed: Path, tmp_path: Path, scratch: Path) -> None:
    bomb = _repack(packed, tmp_path / "extra.zip", add={"junk.bin": bytes(BOMB)})
    assert bomb.stat().st_size < 64 << 10
    with read_bundle(bomb) as bundle:
        assert not (bundle.root / "junk.bin").exists()
        assert _du(scratch) < 1 << 20
    assert list(scratch.iterdir()) == []


def test_member_larger_than_the_manifest_records_is_refused_before_extraction(packed: Path, tmp_path: Path, scratch: Path) -> None:
    bomb = _repack(packed, tmp_path / "bomb.zip", replace={"openvino/model.bin": bytes(BOMB)})
    with pytest.raises(BundleError, match=r"zip member openvino/model.bin declares 67108864 bytes.*manifest.json records 2048"):
        read_bundle(bomb)
    assert list(scratch.iterdir()) == []


def test_compression_ratio_limit_stops_a_member_the_manifest_agrees_with(packed: Path, tmp_path: Path, scratch: Path) -> None:
    """A re-signed manifest that records the bomb's size still meets the ratio limit."""

    def claim_bomb_size(document: dict) -> None:
        for artifact in document["artifacts"]:
            for f in artifact["files"]:
                if f["path"] == "openvino/model.bin":
                    f["bytes"] = BOMB

    bomb = _repack(packed, tmp_path / "ratio.zip", replace={"openvino/model.bin": bytes(BOMB)}, manifest_edit=claim_bomb_size)
    with pytest.raises(BundleError, match=r"openvino/model.bin.*compression ratio.*limit"):
        read_bundle(bomb)
    assert list(scratch.iterdir()) == []


def test_manifest_is_read_first_and_its_size_is_limited(packed: Path, tmp_path: Path, scratch: Path) -> None:
    bomb = _repack(packed, tmp_path / "manifest-bomb.zip", replace={"manifest.json": b" " * BOMB + b"{}"})
    with pytest.raises(BundleError, match=r"manifest.json.*larger than"):
        read_bundle(bomb)
    assert list(scratch.iterdir()) == []


def test_truncated_zip_is_called_a_damaged_zip(packed: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.zip"
    cut.write_bytes(packed.read_bytes()[: packed.stat().st_size // 2])
    with pytest.raises(BundleError, match=r"damaged zip file.*truncated"):
        read_bundle(cut)


def test_deeply_nested_manifest_is_a_clear_error(bundle_dir: Path) -> None:
    (bundle_dir / "manifest.json").write_text("[" * 100_000 + "]" * 100_000, "utf-8")
    with pytest.raises(BundleError, match=r"manifest.json.*nested too deeply"):
        read_bundle(bundle_dir)
