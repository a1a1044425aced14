"""``python train.py``: validate the config, train, validate the best checkpoint, write metrics.json."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from typing import Any, Optional

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities.exceptions import SIGTERMException

from spp_cls.checkpointing import load_safe, resolve_resume_path
from spp_cls.checkpointing.resume import first_logged_step
from spp_cls.cli.builders import build_datamodule, build_trainer
from spp_cls.cli.errors import exit_on_user_error
from spp_cls.cli.evaluate import evaluate
from spp_cls.cli.results import write_results
from spp_cls.config.schema import TrainConfig
from spp_cls.config.validation import validate_train_config
from spp_cls.lightning import MONITOR, SppClassifier
from spp_cls.lightning.cluster import process_rank
from spp_cls.lightning.data_quality import skip_totals_of_all
from spp_cls.lightning.optim import effective_lr
from spp_cls.lightning.resume import ResumeCheckpoint
from spp_cls.models import model_name

log = logging.getLogger(__name__)


def build_module(cfg: DictConfig) -> SppClassifier:
    """The Lightning module of a run, with the learning rate scaled to the optimizer-step batch."""
    step_batch = cfg.data.batch_size * cfg.trainer.accumulate_grad_batches
    lr = effective_lr(cfg.optim.lr, step_batch, cfg.optim.base_batch_size, cfg.optim.lr_scaling)
    log.info(
        "learning rate %.4g (optim.lr=%g for %d images, step batch %d, lr_scaling=%s)",
        lr, cfg.optim.lr, cfg.optim.base_batch_size, step_batch, cfg.optim.lr_scaling,
    )
    return SppClassifier(
        model=OmegaConf.to_container(cfg.model, resolve=True),
        optim=OmegaConf.to_container(cfg.optim, resolve=True),
        num_classes=cfg.data.num_classes,
        input_size=cfg.data.crop_size,
        lr=lr,
        run_config=OmegaConf.to_container(cfg, resolve=True),
    )


def _final_metrics(trainer: pl.Trainer, module: SppClassifier, datamodule: Any, cfg: DictConfig) -> dict[str, Any]:
    """Validation metrics of the best checkpoint (or of the final weights when no checkpoint is kept)."""
    callback = trainer.checkpoint_callback
    best = getattr(callback, "best_model_path", "") if callback is not None else ""
    results: dict[str, Any] = {}
    if cfg.validate_best and not trainer.fast_dev_run:
        results = dict(trainer.validate(module, datamodule=datamodule, ckpt_path=best or None, weights_only=True)[0])
    results.update(
        model=model_name(cfg.model.arch, cfg.model.spp),
        pyramid=list(cfg.model.pyramid) if cfg.model.spp else None,
        params=sum(p.numel() for p in module.model.parameters()),
        epochs=trainer.current_epoch,
        global_step=trainer.global_step,
        best_checkpoint=best or None,
        last_checkpoint=_last_checkpoint(trainer),
    )
    return results


def _last_checkpoint(trainer: pl.Trainer) -> Optional[str]:
    """The resume checkpoint the run leaves behind (None without a ResumeCheckpoint callback)."""
    paths = [c.path for c in trainer.callbacks if isinstance(c, ResumeCheckpoint) and c.path.is_file()]
    return str(paths[0]) if paths else None


def _log_to_rank_file(run_dir: Path, rank: int) -> None:
    """All processes of a run share its run directory, and Hydra gives each the same log file (train.log; Lightning's
    own DDP processes train_ddp_process_<local rank>.log, the same on every node): every rank but 0 writes its own,
    train_rank<r>.log, instead."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
        ours = logging.FileHandler(run_dir / f"train_rank{rank}.log")
        ours.setFormatter(handler.formatter)
        ours.setLevel(handler.level)
        root.removeHandler(handler)
        handler.close()
        root.addHandler(ours)
        replaced = Path(handler.baseFilename)
        if replaced.name != "train.log" and replaced.is_file() and replaced.stat().st_size == 0:
            replaced.unlink()  # the empty file Hydra opened for a Lightning DDP process


@exit_on_user_error
def run_training(cfg: DictConfig) -> Optional[float]:
    """Train one model as configured; returns the best validation top-1 error (for sweepers)."""
    run_dir = Path(cfg.paths.output_dir)
    devices = cfg.trainer.devices if isinstance(cfg.trainer.devices, int) and cfg.trainer.devices > 0 else None
    if rank := process_rank(devices):
        _log_to_rank_file(run_dir, rank)
    validate_train_config(cfg)
    log.info("run directory: %s", run_dir)
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = build_datamodule(cfg)
    module = build_module(cfg)
    resume = resolve_resume_path(cfg.ckpt_path, run_dir)
    purge_step = None
    if resume:
        purge_step = first_logged_step(load_safe(resume, mmap=True))
        log.info("resuming from %s", resume)
    trainer = build_trainer(cfg, purge_step)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume, weights_only=True)
    except SIGTERMException:  # Lightning exits with status 0 here; a stopped run must not look finished
        log.warning("stopped by SIGTERM after checkpoint %s; the same command (ckpt_path=auto) continues the run",
                    _last_checkpoint(trainer))
        sys.exit(128 + signal.SIGTERM)
    results = _final_metrics(trainer, module, datamodule, cfg)
    results.update(skip_totals_of_all(trainer))
    if cfg.evaluate_protocols and results.get("best_checkpoint") and not trainer.fast_dev_run:
        evaluate([results["best_checkpoint"]], cfg, [], run_dir / "eval", list(cfg.evaluate_protocols),
                 trainer=trainer, skip_inapplicable=True, schema=TrainConfig)
    if trainer.is_global_zero:  # every DDP process gets the same synced metrics; one writes them
        path = write_results(run_dir, results)
        log.info("final metrics: %s", {k: results[k] for k in sorted(results) if k.startswith("val/")})
        log.info("wrote %s; run directory: %s", path, run_dir)
    return results.get(MONITOR)
