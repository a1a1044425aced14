"""Config -> objects, shared by training and evaluation so both read a config the same way."""

from __future__ import annotations

import logging
import sys
from typing import Any, Optional, Sequence, TypeVar, cast

import pytorch_lightning as pl
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import LearningRateMonitor
from pytorch_lightning.loggers import TensorBoardLogger

from spp_cls.data.config import DataConfig
from spp_cls.data.transforms import View
from spp_cls.lightning import ClassificationDataModule, SafeCheckpointIO
from spp_cls.lightning.cluster import cluster_plugins, loader_workers
from spp_cls.lightning.data_quality import DataQualityGuard
from spp_cls.lightning.loggers import ContinuingCSVLogger
from spp_cls.lightning.resume_checkpoint import FORMER_TARGETS

log = logging.getLogger(__name__)

T = TypeVar("T")


def as_config(node: Any, schema: type[T]) -> T:
    """A node of the run config (or a plain mapping) as the object of its schema class, interpolations
    resolved: ``data`` -> ``DataConfig``, ``protocol`` -> ``ProtocolConfig``. The one conversion from the
    composed config to what the layers receive; no setting is copied by name."""
    if isinstance(node, schema):
        return node
    plain = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else dict(node)
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), plain))  # type: ignore[return-value]


def build_datamodule(
    cfg: DictConfig, test_view: Optional[View] = None, class_index: Optional[Sequence[str]] = None
) -> ClassificationDataModule:
    """The run's data module: ``cfg.data`` as the data layer's ``DataConfig``, the loader workers resolved for
    this machine's devices and the run's seed."""
    return ClassificationDataModule(
        as_config(cfg.data, DataConfig),
        num_workers=loader_workers(cfg.data.num_workers, cfg.trainer.devices),
        seed=cfg.seed,
        test_view=test_view,
        class_index=class_index,
    )


def _instantiate_all(group: DictConfig) -> list[Any]:
    """Instantiate every entry of a callbacks/logger group that has a ``_target_`` (a target that has since been
    renamed, in the config of an earlier run, by its current name)."""
    objects = []
    for node in group.values():
        if node and "_target_" in node:
            target = FORMER_TARGETS.get(node._target_, node._target_)
            objects.append(instantiate(node, _target_=target) if target != node._target_ else instantiate(node))
    return objects


def _instantiate_loggers(group: DictConfig, purge_step: Optional[int]) -> list[Any]:
    """The loggers; with ``purge_step`` (a resumed run), those that can continue a log drop its later steps."""
    loggers = []
    for node in group.values():
        if not node or "_target_" not in node:
            continue
        continuing = purge_step is not None and issubclass(
            get_class(node._target_), (TensorBoardLogger, ContinuingCSVLogger)
        )
        loggers.append(instantiate(node, purge_step=purge_step) if continuing else instantiate(node))
    return loggers


def build_trainer(cfg: DictConfig, purge_step: Optional[int] = None) -> pl.Trainer:
    """The Trainer of a run; ``purge_step``: the first logger step of a resumed run (its logs continue there)."""
    args = cast(dict[str, Any], OmegaConf.to_container(cfg.trainer, resolve=True))  # a DictConfig's container
    extra = args.pop("extra")
    if args["deterministic"] and args["benchmark"]:
        # cuDNN ignores its deterministic switch while autotuning: determinism asked for by name wins
        log.warning(
            "trainer.deterministic=%s turns off trainer.benchmark (cuDNN autotuning picks kernels by timing, "
            "which is not deterministic)",
            args["deterministic"],
        )
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
