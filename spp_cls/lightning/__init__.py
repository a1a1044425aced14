"""The Lightning layer: module, data module and checkpoint plugin around the pure-torch parts."""

from spp_cls.lightning.checkpoint_io import SafeCheckpointIO
from spp_cls.lightning.datamodule import ImageFolderDataModule
from spp_cls.lightning.module import MONITOR, SppClassifier

__all__ = ["ImageFolderDataModule", "MONITOR", "SafeCheckpointIO", "SppClassifier"]
