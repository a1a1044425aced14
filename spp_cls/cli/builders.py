"""Config -> objects, shared by training and evaluation so both read a config the same way."""

from __future__ import annotations

from typing import Any, Callable, Optional

import pytorch_lightning as pl
from pytorch_lightning.callbacks import LearningRateMonitor
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from spp_cls.data.synthetic import SyntheticSpec
from spp_cls.data.transforms import PipelineSettings
from spp_cls.lightning import ImageFolderDataModule, SafeCheckpointIO


def pipeline_settings(data: DictConfig) -> PipelineSettings:
    return PipelineSettings(
        resize_size=data.resize_size,
        crop_size=data.crop_size,
        mean=tuple(data.mean),
        std=tuple(data.std),
        interpolation=data.interpolation,
    )


def build_datamodule(cfg: DictConfig, test_transform: Optional[Callable] = None) -> ImageFolderDataModule:
    d = cfg.data
    synthetic = None
    if d.synthetic is not None:
        synthetic = SyntheticSpec(**OmegaConf.to_container(d.synthetic, resolve=True))
    return ImageFolderDataModule(
        root=d.root,
        num_classes=d.num_classes,
        batch_size=d.batch_size,
        num_workers=d.num_workers,
        pipeline=pipeline_settings(d),
        synthetic=synthetic,
        train_split=d.train_split,
        val_split=d.val_split,
        test_transform=test_transform,
    )


def _instantiate_all(group: DictConfig) -> list[Any]:
    """Instantiate every entry of a callbacks/logger group that has a ``_target_``."""
    return [instantiate(node) for node in group.values() if node and "_target_" in node]


def build_trainer(cfg: DictConfig) -> pl.Trainer:
    args = OmegaConf.to_container(cfg.trainer, resolve=True)
    extra = args.pop("extra")
    clash = sorted(set(extra) & set(args))
    if clash:
        raise ValueError(f"trainer.extra repeats keys that trainer sets directly: {clash}")
    loggers = _instantiate_all(cfg.logger)
    callbacks = _instantiate_all(cfg.callbacks)
    if not loggers:  # a learning-rate monitor refuses to run with nothing to log to
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    return pl.Trainer(
        **args,
        **extra,
        callbacks=callbacks,
        logger=loggers or False,
        default_root_dir=cfg.paths.output_dir,
        plugins=[SafeCheckpointIO()],
    )
