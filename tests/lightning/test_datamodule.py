"""The data module: global batch split over processes, setup-time layout checks, synthetic generation."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from spp_cls.data.synthetic import SyntheticSpec, is_complete
from spp_cls.data.transforms import PipelineSettings
from spp_cls.lightning import ImageFolderDataModule

SETTINGS = PipelineSettings(resize_size=73, crop_size=64)


def make(root: Path, batch_size: int = 8, **kwargs: object) -> ImageFolderDataModule:
    return ImageFolderDataModule(root, num_classes=4, batch_size=batch_size, num_workers=0, pipeline=SETTINGS, **kwargs)


def test_global_batch_is_split_over_processes(tiny_data: Path) -> None:
    dm = make(tiny_data, batch_size=12)
    dm.trainer = SimpleNamespace(world_size=3, strategy=SimpleNamespace(root_device=SimpleNamespace(type="cpu")))
    assert dm.per_device_batch_size() == 4
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 64, 64) and batch["skipped"].item() == 0
    dm.trainer.world_size = 5
    with pytest.raises(ValueError, match="batch_size=12 is the global batch.*5 processes"):
        dm.per_device_batch_size()


def test_setup_checks_the_class_count(tiny_data: Path) -> None:
    dm = ImageFolderDataModule(tiny_data, num_classes=7, batch_size=4, num_workers=0, pipeline=SETTINGS)
    with pytest.raises(ValueError, match="data.num_classes=7"):
        dm.setup("fit")


def test_prepare_data_generates_the_synthetic_set(tmp_path: Path) -> None:
    spec = SyntheticSpec(num_classes=4, train_per_class=2, val_per_class=1, min_short_side=64, max_short_side=70)
    dm = make(tmp_path / "gen", synthetic=spec)
    dm.prepare_data()
    assert is_complete(tmp_path / "gen", spec)
    dm.setup("validate")
    assert len(dm.datasets["val"]) == 4
