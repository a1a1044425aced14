"""Config -> objects, shared by training and evaluation so both read a config the same way."""

from __future__ import annotations

import logging
import sys
from typing import Any, Callable, Optional, Sequence

import pytorch_lightning as pl
from pytorch_lightning.callbacks import LearningRateMonitor
from pytorch_lightning.loggers import TensorBoardLogger
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from spp_cls.data.synthetic import SyntheticSpec
from spp_cls.data.transforms import PipelineSettings
from spp_cls.lightning import ImageFolderDataModule, SafeCheckpointIO
from spp_cls.lightning.cluster import cluster_plugins, loader_workers
from spp_cls.lightning.data_quality import DataQualityGuard
from spp_cls.lightning.datamodule import SourceSettings
from spp_cls.lightning.loggers import ContinuingCSVLogger

log = logging.getLogger(__name__)


def pipeline_settings(data: DictConfig) -> PipelineSettings:
    return PipelineSettings(
        resize_size=data.resize_size,
        crop_size=data.crop_size,
        mean=tuple(data.mean),
        std=tuple(data.std),
        interpolation=data.interpolation,
        train_crop=data.train_crop,
        flip=data.flip,
        lighting_std=data.lighting_std,
        eigval=tuple(data.eigval),
        eigvec=tuple(tuple(row) for row in data.eigvec),
        normalization=data.normalization,
        mean_image=data.mean_image,
        max_pixels=data.max_pixels,
        reduced_decode=data.reduced_decode,
    )


def source_settings(cfg: DictConfig) -> SourceSettings:
    d = cfg.data
    return SourceSettings(
        format=d.format,
        train_sizes=tuple(d.train_sizes),
        size_schedule=d.size_schedule,
        seed=cfg.seed,
        val_labels=d.val_labels,
        val_label_map=d.val_label_map,
        list_cache_dir=d.list_cache_dir,
        max_skip_fraction=d.max_skip_fraction,
        shuffle_buffer=d.shuffle_buffer,
        shard_size=d.shard_size,
        allow_pipe=d.allow_pipe,
        synthetic_folder=d.synthetic_folder,
    )


def build_datamodule(
    cfg: DictConfig, test_view: Optional[Callable] = None, class_index: Optional[Sequence[str]] = None
) -> ImageFolderDataModule:
    d = cfg.data
    synthetic = None
    if d.synthetic is not None:
        synthetic = SyntheticSpec(**OmegaConf.to_container(d.synthetic, resolve=True))
    return ImageFolderDataModule(
        root=d.root,
        num_classes=d.num_classes,
        batch_size=d.batch_size,
        num_workers=loader_workers(d.num_workers, cfg.trainer.devices),
        pin_memory=d.pin_memory,
        pipeline=pipeline_settings(d),
        synthetic=synthetic,
        train_split=d.train_split,
        val_split=d.val_split,
        test_view=test_view,
        source=source_settings(cfg),
        class_index=class_index,
    )


def _instantiate_all(group: DictConfig) -> list[Any]:
    """Instantiate every entry of a callbacks/logger group that has a ``_target_``."""
    return [instantiate(node) for node in group.values() if node and "_target_" in node]


def _instantiate_loggers(group: DictConfig, purge_step: Optional[int]) -> list[Any]:
    """The loggers; with ``purge_step`` (a resumed run), those that can continue a log drop its later steps."""
    loggers = []
    for node in group.values():
        if not node or "_target_" not in node:
            continue
        continuing = purge_step is not None and issubclass(get_class(node._target_), (TensorBoardLogger, ContinuingCSVLogger))
        loggers.append(instantiate(node, purge_step=purge_step) if continuing else instantiate(node))
    return loggers


def build_trainer(cfg: DictConfig, purge_step: Optional[int] = None) -> pl.Trainer:
    """The Trainer of a run; ``purge_step``: the first logger step of a resumed run (its logs continue there)."""
    args = OmegaConf.to_container(cfg.trainer, resolve=True)
    extra = args.pop("extra")
    if args["deterministic"] and args["benchmark"]:
        # cuDNN ignores its deterministic switch while autotuning: determinism asked for by name wins
        log.warning("trainer.deterministic=%s turns off trainer.benchmark (cuDNN autotuning picks kernels by timing, "
                    "which is not deterministic)", args["deterministic"])
        args["benchmark"] = False
    if args["enable_progress_bar"] is None:  # a bar in a log file is hundreds of carriage-return lines
        args["enable_progress_bar"] = sys.stderr.isatty()
    clash = sorted(set(extra) & (set(args) | {"use_distributed_sampler"}))
    if clash:
        raise ValueError(f"trainer.extra repeats keys that trainer sets directly: {clash}")
    loggers = _instantiate_loggers(cfg.logger, purge_step)
    # the guard first: it must see an epoch's skip counts before EpochSummary reports and resets them
    callbacks = [DataQualityGuard(), *_instantiate_all(cfg.callbacks)]
    if not loggers:  # a learning-rate monitor refuses to run with nothing to log to
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    return pl.Trainer(
        **args,
        **extra,
        callbacks=callbacks,
        logger=loggers or False,
        default_root_dir=cfg.paths.output_dir,
        plugins=[SafeCheckpointIO(), *cluster_plugins()],
        use_distributed_sampler=False,  # the data module splits every split over ranks itself
    )
