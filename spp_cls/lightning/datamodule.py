"""Lightning data module for class-folder data sets, the embedded synthetic one included.

``batch_size`` is global: each of the trainer's ``world_size`` processes loads ``batch_size / world_size``
images per step, and a batch size that does not divide fails at setup with a message naming both numbers.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Optional

import pytorch_lightning as pl
from torch.utils.data import DataLoader, Dataset

from spp_cls.data.folder import SkippingImageFolder, check_layout, collate_skipping
from spp_cls.data.synthetic import SyntheticSpec, ensure_synthetic_dataset
from spp_cls.data.transforms import PipelineSettings, center_crop_transform, train_transform

log = logging.getLogger(__name__)


class ImageFolderDataModule(pl.LightningDataModule):
    """Train/val splits of ``root/<split>/<class>/<image>``; generated first if ``synthetic`` is given.

    Args:
        root: data set folder.
        num_classes: expected number of class folders in every split.
        batch_size: global batch size (all devices together).
        num_workers: loader processes per device.
        pipeline: resize/crop/normalisation settings.
        synthetic: if set, ``root`` is a cache that is generated (or rebuilt) from this spec on first use.
        train_split, val_split: split folder names.
        test_transform: transform of the test loader (a test protocol's); the center crop by default.
    """

    def __init__(
        self,
        root: str | Path,
        num_classes: int,
        batch_size: int,
        num_workers: int,
        pipeline: PipelineSettings,
        synthetic: Optional[SyntheticSpec] = None,
        train_split: str = "train",
        val_split: str = "val",
        test_transform: Optional[Callable] = None,
    ) -> None:
        super().__init__()
        self.root = Path(root).expanduser()
        self.num_classes = num_classes
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pipeline = pipeline
        self.synthetic = synthetic
        self.train_split, self.val_split = train_split, val_split
        self.test_transform = test_transform or center_crop_transform(pipeline)
        self.classes: list[str] = []
        self.datasets: dict[str, Dataset] = {}

    def prepare_data(self) -> None:
        if self.synthetic is not None:
            ensure_synthetic_dataset(self.root, self.synthetic)

    def per_device_batch_size(self) -> int:
        world = self.trainer.world_size if self.trainer is not None else 1
        if self.batch_size % world:
            raise ValueError(
                f"data.batch_size={self.batch_size} is the global batch and must divide evenly over "
                f"{world} processes (devices x nodes)"
            )
        return self.batch_size // world

    def setup(self, stage: Optional[str] = None) -> None:
        splits = (self.val_split,) if stage in ("validate", "test") else (self.train_split, self.val_split)
        self.classes = check_layout(self.root, splits, self.num_classes)
        if stage in (None, "fit"):
            self.datasets["train"] = SkippingImageFolder(self.root / self.train_split, train_transform(self.pipeline))
        if stage in (None, "fit", "validate"):
            self.datasets["val"] = SkippingImageFolder(self.root / self.val_split, center_crop_transform(self.pipeline))
        if stage in (None, "test"):
            self.datasets["test"] = SkippingImageFolder(self.root / self.val_split, self.test_transform)
        for name, dataset in self.datasets.items():
            if len(dataset) == 0:
                raise ValueError(f"the {name} split under {self.root} has no images")

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.datasets[split],
            batch_size=self.per_device_batch_size(),
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=collate_skipping,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.trainer is not None and self.trainer.strategy.root_device.type == "cuda",
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
