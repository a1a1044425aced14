"""Class folders: layout checks, the cached file list, and bad files skipped, counted and named."""

from __future__ import annotations

import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import torch

from spp_cls.data import folder
from spp_cls.data.config import DataConfig
from spp_cls.data.folder import (
    Skipped,
    SkippingImageFolder,
    check_layout,
    collate_skipping,
    list_class_folder_files,
    list_classes,
    list_flat_names,
)
from spp_cls.data.transforms import CenterView
from tests.data import bad_images

SETTINGS = DataConfig(resize_size=73, crop_size=64)


def test_bad_files_are_converted_or_skipped_and_named(tiny_data: Path, tmp_path: Path) -> None:
    root = tmp_path / "val"
    shutil.copytree(tiny_data / "val", root)
    good = bad_images.write(root / "00_disk", bad_images.convertible())
    bad = bad_images.write(root / "01_square", bad_images.unreadable())
    dataset = SkippingImageFolder(root, CenterView(SETTINGS), size=64)
    items = {dataset.samples[i][0]: dataset[i] for i in range(len(dataset))}
    for path in good:
        assert items[str(path)]["image"].shape == (3, 64, 64)
    for path in bad:
        assert isinstance(items[str(path)], Skipped) and items[str(path)].reason
    batch = collate_skipping([items[str(bad[0])], items[str(good[0])], items[str(bad[1])]])
    assert batch["skipped"].item() == 2 and batch["skipped_paths"] == [str(bad[0]), str(bad[1])]
    assert batch["image"].shape == (1, 3, 64, 64) and batch["image"].dtype == torch.uint8
    empty = collate_skipping([items[str(bad[0])]])
    assert empty["image"] is None and empty["skipped"].item() == 1


def test_file_list_is_cached_and_follows_changes(tiny_data: Path, tmp_path: Path) -> None:
    root = tmp_path / "train"
    shutil.copytree(tiny_data / "train", root)
    (root / "00_disk" / "README.txt").write_text("not an image")
    classes = list_classes(root)
    cache = tmp_path / "cache"
    first = list_class_folder_files(root, classes, cache)
    assert len(first) == 64 and not any(p.endswith(".txt") for p, _ in first)
    assert len(list(cache.glob("*.json"))) == 1
    assert [label for _, label in first] == sorted(label for _, label in first)
    # a second start reads the cache: prove it by hiding a file without touching the folder's mtime
    victim = Path(first[0][0])
    stat = victim.parent.stat()
    hidden = victim.rename(tmp_path / "hidden.jpg")
    import os

    os.utime(victim.parent, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert list_class_folder_files(root, classes, cache) == first
    # a real change (new mtime) is noticed
    hidden.rename(victim.parent / "new_name.jpg")
    again = list_class_folder_files(root, classes, cache)
    assert len(again) == 64 and str(victim.parent / "new_name.jpg") in [p for p, _ in again]


def test_layout_errors_name_the_problem(tiny_data: Path, tmp_path: Path) -> None:
    assert len(check_layout(tiny_data, ("train", "val"), 4)) == 4
    with pytest.raises(ValueError, match="has 4 class folders but data.num_classes=5"):
        check_layout(tiny_data, ("train",), 5)
    flat = tmp_path / "flat"
    (flat / "val").mkdir(parents=True)
    (flat / "val" / "img.jpg").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="no class folders.*data.val_labels"):
        check_layout(flat, ("val",), 1)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_layout(tmp_path / "nowhere", ("train",), 1)
    odd = tmp_path / "odd"
    shutil.copytree(tiny_data, odd)
    (odd / "val" / "00_disk").rename(odd / "val" / "00_circle")
    with pytest.raises(
        ValueError, match=r"1 in .*train but not in .*val \(00_disk\); 1 in .*val but not in .*train \(00_circle\)"
    ):
        check_layout(odd, ("train", "val"), 4)


@pytest.mark.parametrize("flat", [False, True])
def test_concurrent_starts_list_a_split_once(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flat: bool
) -> None:
    """Processes starting at once (one per node, on shared storage) list a split once: the others wait for
    the lock of its cache and read what the first wrote. Threads stand in for them: each takes the lock
    through its own open file, as a process does."""
    split = tmp_path / "split"
    if flat:
        split.mkdir()
        for n, path in enumerate(sorted((tiny_data / "val").rglob("*.jpg"))):
            shutil.copy(path, split / f"{n:04d}.JPEG")
    else:
        shutil.copytree(tiny_data / "val", split)
    classes = list_classes(tiny_data / "val")
    scans: list[str] = []

    def record(path: Any) -> None:
        scans.append(str(path))
        time.sleep(0.2)  # a slow network listing: the other starts arrive while it runs

    real_scan, real_scandir = folder._scan, os.scandir
    monkeypatch.setattr(folder, "_scan", lambda path, names: record(path) or real_scan(path, names))
    monkeypatch.setattr(
        os, "scandir", lambda path: (flat and os.fspath(path) == str(split) and record(path)) or real_scandir(path)
    )
    cache = tmp_path / "cache"
    start = threading.Barrier(3)

    def list_split() -> Any:
        start.wait(timeout=60)
        return list_flat_names(split, cache) if flat else list_class_folder_files(split, classes, cache)

    with ThreadPoolExecutor(3) as pool:
        results = [f.result(timeout=300) for f in [pool.submit(list_split) for _ in range(3)]]
    assert len(scans) == 1 and results[0] == results[1] == results[2] and len(results[0]) == 32
    assert len(list(cache.glob("split-*.json"))) == 1 and not list(cache.glob(".*.tmp-*"))
