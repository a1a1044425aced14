"""The Lightning layer: module, data module and checkpoint plugin around the pure-torch parts."""

from spp_cls.lightning.checkpoint_io import SafeCheckpointIO
from spp_cls.lightning.datamodule import ClassificationDataModule
from spp_cls.lightning.module import MONITOR, SppClassifier

__all__ = ["ClassificationDataModule", "MONITOR", "SafeCheckpointIO", "SppClassifier"]
