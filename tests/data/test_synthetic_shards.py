"""The embedded data set as shards: converted once when several processes ask at once, cut for its readers,
rebuilt only when what decides the shards changes."""

from __future__ import annotations

import errno
import fcntl
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from spp_cls.data import make_shards, synthetic_shards
from spp_cls.data.make_shards import ConversionError
from spp_cls.data.shard_manifest import MANIFEST_NAME, load_manifest
from spp_cls.data.synthetic import SyntheticSpec
from spp_cls.data.synthetic_shards import ensure_synthetic_shards

SPEC = SyntheticSpec(num_classes=3, train_per_class=4, val_per_class=2, min_short_side=40, max_short_side=56)  # 12 + 6


def _shards(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.glob("*.tar"))}


@pytest.mark.parametrize("locks", [True, False], ids=["locks", "no_locks"])
def test_concurrent_requests_convert_once_into_whole_shards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, locks: bool
) -> None:
    reference = ensure_synthetic_shards(tmp_path / "ref-source", tmp_path / "ref", SPEC, 4, ("train", "val"))
    if not locks:

        def refuse(fd: int, operation: int) -> None:
            raise OSError(errno.ENOSYS, "Function not implemented")

        monkeypatch.setattr(fcntl, "flock", refuse)
    conversions = []
    real_convert = synthetic_shards.convert
    monkeypatch.setattr(synthetic_shards, "convert", lambda *a, **k: conversions.append(1) or real_convert(*a, **k))
    shared = tmp_path / "shared"
    start = threading.Barrier(3)

    def ask() -> Path:
        start.wait(timeout=60)
        return ensure_synthetic_shards(shared / "syn-source", shared / "syn-wds", SPEC, 4, ("train", "val"))

    with ThreadPoolExecutor(3) as pool:
        results = [f.result(timeout=300) for f in [pool.submit(ask) for _ in range(3)]]
    assert results == [shared / "syn-wds"] * 3
    assert len(conversions) == 1 if locks else 1 <= len(conversions) <= 3
    assert _shards(shared / "syn-wds") == _shards(reference)  # the same bytes as a lone conversion
    assert load_manifest(str(shared / "syn-wds")).split("val").samples == 6
    assert sorted(p.name for p in shared.iterdir()) == [".syn-source.lock", ".syn-wds.lock", "syn-source", "syn-wds"]


def test_shards_are_cut_for_their_readers_and_kept_while_enough(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, shards = tmp_path / "source", tmp_path / "wds"
    ensure_synthetic_shards(folder, shards, SPEC, 4, ("train", "val"), readers=2)  # 3 and 2 shards: enough for 2
    manifest = load_manifest(str(shards))
    assert [len(manifest.split(s).shards) for s in ("train", "val")] == [3, 2]
    before = (shards / MANIFEST_NAME).stat().st_ino
    ensure_synthetic_shards(folder, shards, SPEC, 4, ("train", "val"), readers=1)  # fewer readers: nothing to redo
    assert (shards / MANIFEST_NAME).stat().st_ino == before
    ensure_synthetic_shards(folder, shards, SPEC, 4, ("train", "val"), readers=4)  # 2 GPUs x 2 workers
    manifest = load_manifest(str(shards))
    assert [len(manifest.split(s).shards) for s in ("train", "val")] == [4, 4]
    assert [manifest.split(s).samples for s in ("train", "val")] == [12, 6]


def test_a_foreign_folder_is_refused(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    with pytest.raises(ConversionError, match="not an earlier run of make_shards"):
        ensure_synthetic_shards(tmp_path / "source", mine, SPEC, 4, ("train", "val"))
    assert (mine / "notes.txt").read_text() == "precious" and not (mine / make_shards.STATE_NAME).exists()
