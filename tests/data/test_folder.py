"""Class-folder loading: layout checks with clear messages, unreadable images skipped and counted."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from spp_cls.data.folder import SkippingImageFolder, check_layout, collate_skipping
from spp_cls.data.transforms import PipelineSettings, center_crop_transform, train_transform

SETTINGS = PipelineSettings(resize_size=73, crop_size=64)


def test_bad_images_are_skipped_and_counted(tiny_data: Path, tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(tiny_data / "val", root)
    files = sorted(root.rglob("*.jpg"))
    files[0].write_bytes(b"not a jpeg")
    files[1].write_bytes(files[1].read_bytes()[:50])  # truncated
    dataset = SkippingImageFolder(root, center_crop_transform(SETTINGS))
    batch = collate_skipping([dataset[i] for i in range(4)])
    assert batch["skipped"].item() == 2
    assert batch["image"].shape == (2, 3, 64, 64) and batch["target"].shape == (2,)
    assert collate_skipping([None, None]) == {"image": None, "target": None, "skipped": torch.tensor(2)}


def test_layout_errors_name_the_problem(tiny_data: Path, tmp_path: Path) -> None:
    assert len(check_layout(tiny_data, ("train", "val"), 4)) == 4
    with pytest.raises(ValueError, match="has 4 class folders but data.num_classes=5"):
        check_layout(tiny_data, ("train",), 5)
    flat = tmp_path / "flat"
    (flat / "val").mkdir(parents=True)
    (flat / "val" / "img.jpg").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="no class folders"):
        check_layout(flat, ("val",), 1)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_layout(tmp_path / "nowhere", ("train",), 1)
    odd = tmp_path / "odd"
    shutil.copytree(tiny_data, odd)
    (odd / "val" / "00_disk").rename(odd / "val" / "00_circle")
    with pytest.raises(ValueError, match="class folders differ"):
        check_layout(odd, ("train", "val"), 4)


def test_train_and_eval_pipelines(tiny_data: Path) -> None:
    dataset = SkippingImageFolder(tiny_data / "train")
    image, _ = dataset[0]
    torch.manual_seed(0)
    a, b = train_transform(SETTINGS)(image), train_transform(SETTINGS)(image)
    assert a.shape == b.shape == (3, 64, 64)
    center = center_crop_transform(SETTINGS)
    torch.testing.assert_close(center(image), center(image))
    assert abs(center(image).mean().item()) < 3  # normalised


@pytest.mark.parametrize("kwargs", [dict(crop_size=300), dict(interpolation="nearest"), dict(std=(0.1, 0, 0.1))])
def test_bad_pipeline_settings(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        PipelineSettings(**kwargs)
