"""The shard converter: every good image exactly once, bad ones listed not copied, safe resume, resizing."""

from __future__ import annotations

import io
import json
import logging
import shutil
import struct
import tarfile
import zlib
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spp_cls.data.config import DataConfig, source_errors
from spp_cls.data.decode import decode_rgb
from spp_cls.data.make_shards import STATE_NAME, main, sidecar_name
from spp_cls.data.shard_manifest import MANIFEST_NAME, load_manifest
from spp_cls.data.shards import ShardStream
from spp_cls.data.transforms import CenterView


def _read_shard(path: Path) -> dict[str, dict[str, bytes]]:
    """Samples of one tar, by key: {field: bytes}."""
    samples: dict[str, dict[str, bytes]] = defaultdict(dict)
    with tarfile.open(path) as tar:
        for member in tar:
            key, ext = member.name.split(".", 1)
            file = tar.extractfile(member)
            assert file is not None
            samples[key][ext] = file.read()
    return dict(samples)


def _read_split(dst: Path, split: str) -> dict[str, dict[str, bytes]]:
    """Every sample of a split as listed by the manifest, by source path; checks the manifest's counts."""
    manifest = load_manifest(str(dst))
    by_src: dict[str, dict[str, bytes]] = {}
    keys: set[str] = set()
    for shard in manifest.split(split).shards:
        samples = _read_shard(Path(shard.url))
        assert len(samples) == shard.samples > 0
        for key, sample in samples.items():
            assert key not in keys
            keys.add(key)
            src = sample["src"].decode()
            assert src not in by_src
            by_src[src] = sample
    return by_src


def _image_field(sample: dict[str, bytes]) -> str:
    (field,) = [f for f in ("jpg", "png", "img") if f in sample]
    return field


def _convert(src: Path, dst: Path, *args: str) -> int:
    return main([str(src), str(dst), *args])


def _png_bomb(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height``: the pixel limit must catch it from the header."""
    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    ihdr = bytearray(data[12:29])  # "IHDR" + 13 bytes of header data
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


def _jpeg(width: int, height: int, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def test_round_trip_keeps_every_image_once_with_its_class_and_bytes(tiny_data: Path, tmp_path: Path) -> None:
    dst = tmp_path / "shards"
    assert _convert(tiny_data, dst, "--shard-size", "10") == 0
    manifest = load_manifest(str(dst))
    classes = sorted(p.name for p in (tiny_data / "train").iterdir() if p.is_dir())
    assert list(manifest.classes) == classes
    assert manifest.settings["shard_size"] == 10 and manifest.settings["seed"] == 0
    assert manifest.settings["resize_short"] is None and manifest.settings["quality"] is None
    assert manifest.settings["source"] == str(tiny_data.resolve())
    content = json.loads((dst / MANIFEST_NAME).read_text())
    for split, count in (("train", 64), ("val", 32)):
        sources = {p.relative_to(tiny_data / split).as_posix(): p for p in (tiny_data / split).rglob("*.jpg")}
        samples = _read_split(dst, split)
        assert set(samples) == set(sources) and len(sources) == count
        for src, sample in samples.items():
            assert sample["cls"].decode() == str(classes.index(src.split("/")[0]))
            assert sample["jpg"] == sources[src].read_bytes()
        assert manifest.split(split).samples == count == content["splits"][split]["samples"]
        assert content["splits"][split]["skipped"] == []
        shards = manifest.split(split).shards
        assert [Path(s.url).name for s in shards] == [f"{split}-{k:06d}.tar" for k in range(len(shards))]
        assert [s.samples for s in shards] == [10] * (count // 10) + [count % 10]
        for shard in shards[:-1]:  # shuffled: no full shard is one class (the last short one may be by chance)
            labels = {s["cls"] for s in _read_shard(Path(shard.url)).values()}
            assert len(labels) > 1, shard.url
    leftovers = {p.name for p in dst.iterdir()} - {MANIFEST_NAME, STATE_NAME}
    assert all(n.endswith(".tar") or (n.startswith(".") and n.endswith(".tar.json")) for n in leftovers)


def test_bad_files_are_listed_and_left_out(tiny_data: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(tiny_data / "train", src / "train")
    folder = sorted(p for p in (src / "train").iterdir() if p.is_dir())[0]
    good = sorted(folder.glob("*.jpg"))[0].read_bytes()
    png = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(png, "PNG")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (folder / "text.jpg").write_text("this is not an image\n")
    (folder / "bomb.JPEG").write_bytes(_png_bomb(14000, 14000))
    (folder / "really_png.jpg").write_bytes(png.getvalue())
    (folder / "notes.txt").write_text("not an image name: ignored")
    dst = tmp_path / "shards"
    assert _convert(src, dst, "--splits", "train", "--shard-size", "7") == 0

    bad = {f"{folder.name}/{n}" for n in ("empty.jpg", "truncated.jpg", "text.jpg", "bomb.JPEG")}
    skipped = json.loads((dst / MANIFEST_NAME).read_text())["splits"]["train"]["skipped"]
    assert {item["path"] for item in skipped} == bad and all(item["reason"] for item in skipped)
    reasons = {item["path"]: item["reason"] for item in skipped}
    assert "empty" in reasons[f"{folder.name}/empty.jpg"] and "limit" in reasons[f"{folder.name}/bomb.JPEG"]
    samples = _read_split(dst, "train")
    assert set(samples).isdisjoint(bad) and f"{folder.name}/notes.txt" not in samples
    assert len(samples) == 64 + 1
    kept = samples[f"{folder.name}/really_png.jpg"]
    assert _image_field(kept) == "png" and kept["png"] == png.getvalue()
    assert load_manifest(str(dst)).split("train").samples == 65


def test_all_bad_chunk_writes_no_empty_shard(tmp_path: Path) -> None:
    src = tmp_path / "src" / "train"
    for name in ("a", "b"):
        (src / name).mkdir(parents=True)
        (src / name / "ok.jpg").write_bytes(_jpeg(20, 20))
    for i in range(6):
        (src / "a" / f"bad{i}.jpg").write_bytes(b"")
    dst = tmp_path / "shards"
    assert _convert(tmp_path / "src", dst, "--splits", "train", "--shard-size", "1") == 0
    manifest = json.loads((dst / MANIFEST_NAME).read_text())["splits"]["train"]
    assert manifest["samples"] == 2 and len(manifest["skipped"]) == 6
    assert len(manifest["shards"]) == 2 and all(s["samples"] == 1 for s in manifest["shards"])
    assert sorted(p.name for p in dst.glob("*.tar")) == sorted(s["name"] for s in manifest["shards"])


def test_resume_after_interruption_gives_the_same_shards(
    tiny_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    dst = tmp_path / "shards"
    assert _convert(tiny_data, dst, "--shard-size", "10", "--seed", "3") == 0
    manifest = (dst / MANIFEST_NAME).read_text()
    tars = {p.name: p.read_bytes() for p in dst.glob("*.tar")}
    assert len(tars) == 7 + 4

    # An interruption: no manifest yet, the last train shard never started, the one before crashed between
    # its sidecar and its rename, and a half-written tar lies around under its temporary name.
    (dst / MANIFEST_NAME).unlink()
    (dst / "train-000006.tar").unlink()
    (dst / sidecar_name("train-000006.tar")).unlink()
    (dst / "train-000005.tar").rename(dst / ".train-000005.tar.tmp")
    (dst / ".val-000003.tar.tmp").write_bytes(b"half a tar")
    caplog.set_level(logging.INFO, logger="spp_cls.data.make_shards")
    assert _convert(tiny_data, dst, "--shard-size", "10", "--seed", "3") == 0
    assert "train: 64 files in 7 shards of up to 10; reusing 5 shards" in caplog.text
    assert "val: 32 files in 4 shards of up to 10; reusing 4 shards" in caplog.text
    assert (dst / MANIFEST_NAME).read_text() == manifest
    assert {p.name: p.read_bytes() for p in dst.glob("*.tar")} == tars
    assert not list(dst.glob(".*.tmp"))

    capsys.readouterr()
    assert _convert(tiny_data, dst, "--shard-size", "10", "--seed", "4") == 2
    error = capsys.readouterr().err
    assert "other settings" in error and "seed: 3 then, 4 now" in error
    assert _convert(tiny_data, dst, "--shard-size", "12", "--seed", "3") == 2
    assert "shard_size: 10 then, 12 now" in capsys.readouterr().err
    assert (dst / MANIFEST_NAME).read_text() == manifest  # refused runs change nothing


def test_clear_errors(tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _convert(tmp_path / "missing", tmp_path / "out") == 2
    assert "does not exist" in capsys.readouterr().err
    flat = tmp_path / "flat"
    (flat / "train").mkdir(parents=True)
    (flat / "train" / "a.jpg").write_bytes(_jpeg(20, 20))
    assert _convert(flat, tmp_path / "out", "--splits", "train") == 2
    assert "no class folders" in capsys.readouterr().err
    assert _convert(tiny_data, tmp_path / "out", "--splits", "train", "test") == 2
    assert "does not exist" in capsys.readouterr().err
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.pdf").write_bytes(b"%PDF")
    assert _convert(tiny_data, foreign) == 2
    assert "not an earlier run" in capsys.readouterr().err
    assert [p.name for p in foreign.iterdir()] == ["thesis.pdf"]
    assert not (tmp_path / "out").exists()


def test_flat_val_with_label_file(tiny_data: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(tiny_data / "train", src / "train")
    (src / "val").mkdir()
    classes = sorted(p.name for p in (src / "train").iterdir() if p.is_dir())
    lines = []
    for i, image in enumerate(sorted((tiny_data / "val").rglob("*.jpg"))):
        shutil.copy(image, src / "val" / f"val_{i:03d}.jpg")
        lines.append(f"val_{i:03d}.jpg {classes.index(image.parent.name)}")
    (src / "labels.txt").write_text("\n".join(lines) + "\n")
    dst = tmp_path / "shards"
    args = ("--shard-size", "10", "--val-labels", str(src / "labels.txt"), "--val-label-map", "sorted")
    assert _convert(src, dst, *args) == 0
    samples = _read_split(dst, "val")
    assert len(samples) == 32
    for line in lines:
        name, label = line.split()
        assert samples[name]["cls"].decode() == label
        assert samples[name]["jpg"] == (src / "val" / name).read_bytes()


def test_resize_short_side(tiny_data: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(tiny_data / "val", src / "val")
    folder = sorted(p for p in (src / "val").iterdir() if p.is_dir())[0]
    small = _jpeg(60, 50, seed=1)
    (folder / "small.jpg").write_bytes(small)
    big_png = io.BytesIO()
    Image.fromarray(np.full((300, 120, 3), 90, np.uint8)).save(big_png, "PNG")
    (folder / "tall.png").write_bytes(big_png.getvalue())
    (folder / "large.jpg").write_bytes(_jpeg(640, 400, seed=2))  # decoded at reduced scale, then resized
    dst = tmp_path / "shards"
    assert _convert(src, dst, "--splits", "val", "--resize-short", "64", "--quality", "90") == 2  # val is not train
    assert (
        _convert(src, dst, "--splits", "val", "--resize-short", "64", "--quality", "90", "--resize-splits", "val") == 0
    )
    manifest = load_manifest(str(dst))
    assert manifest.settings["resize_short"] == 64 and manifest.settings["quality"] == 90
    assert manifest.stored_short_side("val") == 64
    samples = _read_split(dst, "val")
    assert len(samples) == 32 + 3
    for name, sample in samples.items():
        if name.endswith("small.jpg"):
            assert sample["jpg"] == small  # short side 50 <= 64: bytes kept
            continue
        assert _image_field(sample) == "jpg"
        _, height, width = decode_rgb(sample["jpg"]).shape
        assert min(height, width) == 64, name
    _, height, width = decode_rgb(samples[f"{folder.name}/tall.png"]["jpg"]).shape
    assert (height, width) == (160, 64)
    _, height, width = decode_rgb(samples[f"{folder.name}/large.jpg"]["jpg"]).shape
    assert (height, width) == (64, 102)
    gray = decode_rgb(samples[f"{folder.name}/tall.png"]["jpg"]).float().mean().item()
    assert abs(gray - 90) < 2  # the content survives the resize and re-encode


def test_workers_write_the_same_shards(tiny_data: Path, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    assert _convert(tiny_data, one, "--splits", "val", "--shard-size", "8") == 0
    assert _convert(tiny_data, two, "--splits", "val", "--shard-size", "8", "--workers", "2") == 0
    assert (one / MANIFEST_NAME).read_text() == (two / MANIFEST_NAME).read_text()
    assert {p.name: p.read_bytes() for p in one.glob("*.tar")} == {p.name: p.read_bytes() for p in two.glob("*.tar")}


def test_readers_give_every_split_enough_shards(tiny_data: Path, tmp_path: Path) -> None:
    """The README's --shard-size 1000 leaves ILSVRC-2012's val with fewer shards than 8 GPUs x 8 workers;
    --readers cuts such a split into one near-equal shard per reader, and leaves a split with enough as it is."""
    dst = tmp_path / "wds"
    assert _convert(tiny_data, dst, "--shard-size", "20", "--readers", "6") == 0  # 64 train, 32 val images
    manifest = load_manifest(str(dst))
    for split, total in (("train", 64), ("val", 32)):  # --shard-size alone: 4 and 2 shards, too few for 6 readers
        sizes = [s.samples for s in manifest.split(split).shards]
        assert len(sizes) == 6 and sum(sizes) == total and max(sizes) - min(sizes) <= 1
        assert len(_read_split(dst, split)) == total  # every image once
    for split, train in (("train", True), ("val", False)):  # 2 processes x 3 workers accept them
        ShardStream(
            manifest.split(split),
            CenterView(DataConfig(resize_size=73, crop_size=64)),
            4,
            train=train,
            sizes=[64],
            schedule="alternate",
            seed=0,
            eval_size=64,
            world_size=2,
            rank=1,
            num_workers=3,
        )
    assert json.loads((dst / STATE_NAME).read_text())["settings"]["readers"] == 6
    assert _convert(tiny_data, dst, "--shard-size", "20", "--readers", "8") == 2  # another plan: refused, not mixed

    enough = tmp_path / "enough"
    assert _convert(tiny_data, enough, "--shard-size", "8", "--readers", "4") == 0
    assert [s.samples for s in load_manifest(str(enough)).split("train").shards] == [8] * 8  # enough already
    plain = tmp_path / "plain"
    assert _convert(tiny_data, plain, "--shard-size", "8") == 0
    assert "readers" not in json.loads((plain / STATE_NAME).read_text())["settings"]  # as before the option existed
    assert (enough / "train-000003.tar").read_bytes() == (plain / "train-000003.tar").read_bytes()


def test_resize_short_applies_to_the_training_split_only_by_default(tiny_data: Path, tmp_path: Path) -> None:
    """The recommended layout for GPU nodes: training pre-resized, validation whole for the full-image protocols."""
    dst = tmp_path / "shards"
    assert _convert(tiny_data, dst, "--shard-size", "16", "--resize-short", "40") == 0
    manifest = load_manifest(str(dst))
    assert manifest.stored_short_side("train") == 40 and manifest.stored_short_side("val") is None
    train, val = _read_split(dst, "train"), _read_split(dst, "val")
    assert {min(decode_rgb(s["jpg"]).shape[1:]) for s in train.values()} == {40}
    originals = {p.relative_to(tiny_data / "val").as_posix(): p.read_bytes() for p in (tiny_data / "val").rglob("*.*")}
    assert all(sample[_image_field(sample)] == originals[name] for name, sample in val.items())  # untouched bytes


def test_training_that_needs_more_pixels_than_the_shards_hold_is_refused_at_start_up(
    tiny_data: Path, tmp_path: Path
) -> None:
    dst = tmp_path / "shards"
    assert _convert(tiny_data, dst, "--shard-size", "16", "--resize-short", "66") == 0
    settings = dict(name="t", root=str(dst), num_classes=4, format="shards", resize_size=73, crop_size=64)
    assert source_errors(DataConfig(**settings, train_sizes=[48, 56]), "data.") == []  # 73 x 56 / 64 = 64 <= 66
    errors = source_errors(DataConfig(**settings, train_sizes=[64, 48]), "data.")
    assert len(errors) == 1 and "stored at short side 66" in errors[0] and "--resize-short 73" in errors[0]


def test_resizing_images_over_pils_bomb_limit_follows_max_pixels(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--max-pixels is the one limit: an image over PIL's own bomb threshold (2 x Image.MAX_IMAGE_PIXELS, here
    lowered to stand in for its ~179 M) but under --max-pixels is converted, not skipped or fatal to the run,
    and one over --max-pixels is skipped and listed."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    src = tmp_path / "src"
    shutil.copytree(tiny_data / "val", src / "val")
    folder = sorted(p for p in (src / "val").iterdir() if p.is_dir())[0]
    (folder / "large.jpg").write_bytes(_jpeg(640, 400, seed=3))  # 256,000 pixels
    big_png = io.BytesIO()
    Image.fromarray(np.full((300, 120, 3), 90, np.uint8)).save(big_png, "PNG")  # 36,000 pixels
    (folder / "tall.png").write_bytes(big_png.getvalue())
    (folder / "huge.png").write_bytes(_png_bomb(2000, 1000))  # over --max-pixels
    dst = tmp_path / "shards"
    args = ("--splits", "val", "--resize-short", "64", "--resize-splits", "val", "--max-pixels", "1000000")
    assert _convert(src, dst, *args) == 0
    samples = _read_split(dst, "val")
    assert len(samples) == 32 + 2
    assert decode_rgb(samples[f"{folder.name}/large.jpg"]["jpg"]).shape == (3, 64, 102)
    assert decode_rgb(samples[f"{folder.name}/tall.png"]["jpg"]).shape == (3, 160, 64)
    listed = json.loads((dst / MANIFEST_NAME).read_text())["splits"]["val"]["skipped"]
    assert [s["path"] for s in listed] == [f"{folder.name}/huge.png"] and "over the limit" in listed[0]["reason"]
