"""The shard reader: exactly-once evaluation and fixed-length training epochs across 2 ranks x 2 workers,
the same labels and images as the class folders, bad shards skipped and reported, clear errors."""

from __future__ import annotations

import gc
import gzip
import hashlib
import io
import logging
import random
import shutil
import sys
import tarfile
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader

from spp_cls.data.config import DataConfig
from spp_cls.data.device_decode import decode_views
from spp_cls.data.folder import SkippingImageFolder, collate_skipping, list_classes
from spp_cls.data.make_shards import ShardConfig, convert
from spp_cls.data.shard_manifest import ShardInfo, ShardSplit, load_manifest
from spp_cls.data.shards import ShardStream, _shard_files
from spp_cls.data.transforms import CenterView, TrainView

SETTINGS = DataConfig(resize_size=73, crop_size=64)


@pytest.fixture(scope="module")
def shards(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny_data as shards of 8 samples: 8 train shards, 4 val shards."""
    dst = tmp_path_factory.mktemp("shards") / "tiny"
    convert(ShardConfig(source=str(tiny_data), shard_size=8), dst)
    return dst


def _stream(
    root: Path, split: str, train: bool, world: int = 1, rank: int = 0, workers: int = 0, **kw: Any
) -> ShardStream:
    view = TrainView(SETTINGS) if train else CenterView(SETTINGS)
    return ShardStream(
        load_manifest(str(root)).split(split),
        view,
        kw.pop("batch_size", 4),
        train=train,
        sizes=kw.pop("sizes", [64]),
        schedule="alternate",
        seed=1,
        eval_size=64,
        world_size=world,
        rank=rank,
        num_workers=workers,
        **kw,
    )


def _read(stream: ShardStream, epoch: int = 0, intact: bool = True) -> list[dict[str, Any]]:
    stream.set_epoch(epoch)
    batches = list(DataLoader(stream, batch_size=None, num_workers=stream.workers if stream.workers > 1 else 0))
    if intact:
        assert len(batches) == len(stream)
    return batches


def _fingerprints(batches: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [
        (hashlib.sha1(img.numpy().tobytes()).hexdigest(), int(t))
        for b in batches
        for img, t in zip(b["image"], b["target"])
    ]


def test_evaluation_reads_every_sample_once_with_folder_labels(tiny_data: Path, shards: Path) -> None:
    folder = SkippingImageFolder(tiny_data / "val", CenterView(SETTINGS), size=64)
    expected = _fingerprints([collate_skipping([folder[i] for i in range(len(folder))])])
    got = [
        fp
        for rank in (0, 1)
        for fp in _fingerprints(_read(_stream(shards, "val", False, world=2, rank=rank, workers=2)))
    ]
    assert sorted(got) == sorted(expected) and len(got) == 32  # same images, same labels, each exactly once
    assert list(load_manifest(str(shards)).classes) == list_classes(tiny_data / "train")


def test_training_epochs_have_fixed_length_and_follow_the_schedule(shards: Path) -> None:
    streams = [
        _stream(shards, "train", True, world=2, rank=r, workers=2, sizes=[64, 48], shuffle_buffer=10) for r in (0, 1)
    ]
    orders = []
    for epoch, size in ((0, 64), (1, 48)):
        batches = [_read(s, epoch) for s in streams]
        assert [len(b) for b in batches] == [8, 8]  # 64 samples / (4 per rank x 2 ranks)
        assert {img.shape[-1] for rank in batches for b in rank for img in b["image"]} == {size}
        labels = [t for rank in batches for b in rank for t in b["target"].tolist()]
        assert sorted(labels) == sorted([0, 1, 2, 3] * 16)  # 8 shards over 4 readers: every sample once
        orders.append(labels)
    assert orders[0] != orders[1]
    again = [_read(s, 0) for s in streams]
    assert [t for rank in again for b in rank for t in b["target"].tolist()] == orders[0]  # deterministic per epoch


@pytest.mark.parametrize("shard_size, world, workers", [(16, 2, 2), (8, 3, 2), (32, 1, 2)])
def test_evaluation_with_fewer_shards_than_readers_reads_every_sample_once(
    tiny_data: Path, tmp_path: Path, shard_size: int, world: int, workers: int
) -> None:
    """Idle workers are fine in evaluation, as long as every rank has a shard (it then has batches)."""
    dst = tmp_path / "wds"
    convert(ShardConfig(source=str(tiny_data), shard_size=shard_size, splits=("val",)), dst)
    assert len(load_manifest(str(dst)).split("val").shards) < world * workers
    per_rank = [
        _fingerprints(_read(_stream(dst, "val", False, world=world, rank=r, workers=workers))) for r in range(world)
    ]
    assert all(per_rank)  # no rank without a batch: none skips the evaluation loop the others sync at its end
    folder = SkippingImageFolder(tiny_data / "val", CenterView(SETTINGS), size=64)
    expected = _fingerprints([collate_skipping([folder[i] for i in range(len(folder))])])
    assert sorted(fp for rank in per_rank for fp in rank) == sorted(expected)  # every image once, none twice


def test_too_few_shards_is_a_clear_error(shards: Path) -> None:
    with pytest.raises(
        ValueError,
        match=r"train split has 8 shards but 2 processes x 5 loader workers = 10 readers "
        r"need at least one each for training.*--readers 10",
    ):
        _stream(shards, "train", True, world=2, workers=5)
    _stream(shards, "val", False, world=2, workers=5)  # 4 shards for 10 readers: fine for evaluation
    with pytest.raises(
        ValueError, match=r"val split has 4 shards but 5 processes need at least one each for evaluation"
    ):
        _stream(shards, "val", False, world=5, workers=1)
    manifest = load_manifest(str(shards)).split("val")
    piped = replace(manifest, shards=tuple(replace(s, url=f"pipe:cat {s.url}") for s in manifest.shards))
    with pytest.raises(ValueError, match="data.allow_pipe=true"):
        ShardStream(piped, CenterView(SETTINGS), 4, train=False, sizes=[64], schedule="alternate", seed=0, eval_size=64)


def test_piped_and_gzipped_shards_give_the_same_samples(shards: Path, tmp_path: Path) -> None:
    """A ``pipe:`` URL (read in short chunks from a subprocess) and gzip-compressed tars read like the files."""
    manifest = load_manifest(str(shards)).split("val")
    zipped = tmp_path / "zipped"
    zipped.mkdir()
    for shard in manifest.shards:
        (zipped / (Path(shard.url).name + ".gz")).write_bytes(gzip.compress(Path(shard.url).read_bytes()))
    expected = _fingerprints(_read(_stream(shards, "val", False)))
    for url in ("pipe:cat {}", str(zipped / "{}.gz")):
        urls = tuple(
            replace(s, url=url.format(s.url if url.startswith("pipe") else Path(s.url).name)) for s in manifest.shards
        )
        stream = ShardStream(
            replace(manifest, shards=urls),
            CenterView(SETTINGS),
            4,
            train=False,
            sizes=[64],
            schedule="alternate",
            seed=1,
            eval_size=64,
            allow_pipe=True,
        )
        assert _fingerprints(_read(stream)) == expected


def test_unreadable_shard_is_skipped_and_reported(shards: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(shards, broken)
    victim = sorted(broken.glob("val-*.tar"))[1]
    victim.write_bytes(victim.read_bytes()[:3000])  # truncated mid-sample
    batches = _read(_stream(broken, "val", False), intact=False)
    reported = [e for b in batches for e in b["skipped_shards"]]
    assert len(reported) == 1 and victim.name in reported[0]
    assert 24 <= sum(len(b["target"]) for b in batches) < 32  # the other three shards are intact
    assert sum(len(b["target"]) + int(b["skipped"]) for b in batches) == 32  # the unread samples are counted
    victim.unlink()  # a missing shard: same policy
    assert any(
        victim.name in e for b in _read(_stream(broken, "val", False), intact=False) for e in b["skipped_shards"]
    )


def test_training_does_not_spin_when_every_shard_is_unreadable(shards: Path, tmp_path: Path) -> None:
    broken = tmp_path / "dead"
    shutil.copytree(shards, broken)
    for tar in broken.glob("train-*.tar"):
        tar.write_bytes(b"")
    with pytest.raises(RuntimeError, match="got no sample from its shards"):
        _read(_stream(broken, "train", True))


def test_bad_samples_inside_a_shard_are_skipped_and_named(shards: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    shutil.copytree(shards, dst)
    tar_path = sorted(dst.glob("val-*.tar"))[0]
    with tarfile.open(tar_path) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    first_image = next(i for i, (m, _) in enumerate(members) if m.name.endswith((".jpg", ".png", ".img")))
    last_cls = max(i for i, (m, _) in enumerate(members) if m.name.endswith(".cls"))
    with tarfile.open(tar_path, "w") as tar:  # the same shard: its first image garbage, its last label not a number
        for i, (member, data) in enumerate(members):
            if i == first_image:
                data, member.size = b"garbage", 7
            if i == last_cls:
                data, member.size = b"cat", 3
            tar.addfile(member, io.BytesIO(data))
    batches = _read(_stream(dst, "val", False))
    assert sum(int(b["skipped"]) for b in batches) == 2
    named = [p for b in batches for p in b["skipped_paths"]]
    assert len(named) == 2 and all(p.startswith(str(tar_path)) for p in named) and named[0].endswith(".jpg")
    assert sum(len(b["target"]) for b in batches if b["target"] is not None) == 30


def test_encoded_training_batches_render_to_the_decoded_ones(shards: Path) -> None:
    """data.decode_device=cuda on shards: bytes and plans from the readers; the device renders the same views."""
    settings = DataConfig(resize_size=73, crop_size=64, reduced_decode=False)
    batches = []
    for encoded in (False, True):
        stream = _stream(shards, "train", True, sizes=[48], shuffle_buffer=10, encoded=encoded)
        stream.view = TrainView(settings)
        batches.append(_read(stream)[:2])
    for plain, packed in zip(*batches):
        images, kept, failed = decode_views(packed, torch.device("cpu"), "bilinear", 10**8)
        assert kept == [0, 1, 2, 3] and not failed and images.shape == (4, 3, 48, 48)
        assert torch.equal(images, plain["image"]) and torch.equal(packed["lighting"], plain["lighting"])


def _images_and_skipped(batches: list[dict[str, Any]]) -> tuple[int, int]:
    return sum(0 if b["target"] is None else len(b["target"]) for b in batches), sum(int(b["skipped"]) for b in batches)


@pytest.mark.parametrize("world, rank, workers", [(1, 0, 0), (1, 0, 2), (4, 3, 0)])
def test_a_missing_last_shard_is_reported_and_its_samples_counted(
    shards: Path, tmp_path: Path, world: int, rank: int, workers: int
) -> None:
    """The failing shard is the last of its reader after a full batch (1 x 0 and 1 x 2 workers: 8 samples, batch
    4), or the reader's only shard (rank 3 of 4): its error still reaches ``skipped_shards`` and its samples
    count as skipped, so that evaluate.py's images + skipped adds up to the split."""
    broken = tmp_path / "broken"
    shutil.copytree(shards, broken)
    victim = sorted(broken.glob("val-*.tar"))[-1]
    victim.unlink()
    stream = _stream(broken, "val", False, world=world, rank=rank, workers=workers)
    batches = _read(stream, intact=False)
    assert len(batches) <= len(stream)  # Lightning sizes the evaluation loop from len()
    reported = [e for b in batches for e in b["skipped_shards"]]
    assert len(reported) == 1 and victim.name in reported[0] and "No such file or directory" in reported[0]
    images, skipped = _images_and_skipped(batches)
    assert skipped == 8 and images == (24 if world == 1 else 0)
    assert any(victim.name in p for b in batches for p in b["skipped_paths"])


def test_training_fills_a_batch_across_passes_when_a_slots_shards_hold_less(
    shards: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """8 shards of 8 samples for 2 ranks x 4 workers with 16 a batch: each slot has one shard, half a batch; it
    reads its shard again (another pass) to fill the batch instead of failing."""
    stream = _stream(shards, "train", True, world=2, rank=0, workers=4, batch_size=16)
    assert len(stream) == 2
    got = []
    for worker in range(4):
        info = SimpleNamespace(id=worker, num_workers=4)
        monkeypatch.setattr("spp_cls.data.shards.get_worker_info", lambda info=info: info)
        got.append([len(b["target"]) for b in stream])
    assert got == [[16], [16], [], []]  # the DataLoader takes batch i from worker i % 4


def _padded_shards(shards: Path, dst: Path, count: int) -> list[Path]:
    """Copies of training shards with 50 KB of padding per sample (a field the reader ignores), so that a
    pipe still has data to write when its reader stops mid-shard (a pipe buffer holds 64 KB)."""
    dst.mkdir()
    out = []
    for source in sorted(shards.glob("train-*.tar"))[:count]:
        target = dst / source.name
        with tarfile.open(source) as tar, tarfile.open(target, "w") as padded:
            for member in tar.getmembers():
                padded.addfile(member, tar.extractfile(member))
                if member.name.endswith(".cls"):
                    info = tarfile.TarInfo(member.name[: -len("cls")] + "pad")
                    info.size = 50_000
                    padded.addfile(info, io.BytesIO(random.Random(member.name).randbytes(info.size)))
        out.append(target)
    return out


def _leaving_early_fails(path: Path) -> str:
    """A pipe: command that exits 1 when its reader leaves early (as curl exits 23), not of SIGPIPE (141, which
    webdataset ignores)."""
    return f"pipe:trap '' PIPE; exec cat {path}"


def test_a_pipe_closed_mid_shard_is_no_error(shards: Path, tmp_path: Path) -> None:
    (path,) = _padded_shards(shards, tmp_path / "padded", 1)
    errors: list[Exception] = []
    files = _shard_files([_leaving_early_fails(path)], lambda err, url: errors.append(err) is None)
    assert next(files)["__url__"].startswith("pipe:")
    files.close()  # before the fix: RuntimeError("generator ignored GeneratorExit")
    assert errors == []
    list(_shard_files([f"pipe:cat {path}; exit 3"], lambda err, url: errors.append(err) is None))
    assert len(errors) == 1 and "exit 3" in str(errors[0])  # a command that fails is still an error


def test_training_that_stops_mid_pipe_shard_reports_nothing(
    shards: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Each worker stops at its quota, usually inside a shard: closing that pipe is neither an error nor a
    false 'skipping the rest of shard' warning, and nothing is raised while the generators are collected."""
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    urls = [_leaving_early_fails(p) for p in _padded_shards(shards, tmp_path / "padded", 3)]
    split = ShardSplit("train", tuple(ShardInfo(url, 8) for url in urls))
    stream = ShardStream(
        split,
        TrainView(SETTINGS),
        4,
        train=True,
        sizes=[64],
        schedule="alternate",
        seed=1,
        eval_size=64,
        world_size=2,
        shuffle_buffer=2,
        allow_pipe=True,
    )
    with caplog.at_level(logging.WARNING, logger="spp_cls.data.shards"):
        batches = list(stream)  # rank 0: 2 shards (16 samples), 3 batches of 4: it stops inside its 2nd shard
        gc.collect()
    assert len(batches) == 3 and all(b["skipped_shards"] == [] for b in batches)
    assert "skipping" not in caplog.text and unraisable == []
