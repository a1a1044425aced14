"""``python train.py``: validate the config, train, test the checkpoint ``eval_checkpoint`` names, write metrics.json.

After training, the validation and the protocols (``evaluate_protocols``) test the final model by default
(``eval_checkpoint=last``: the resume checkpoint ``checkpoints/last.ckpt``, which ``ResumeCheckpoint`` writes at
the end of training, so it holds the final weights), as the paper reports its final models. ``best`` tests the
epoch with the lowest validation error instead, which is chosen on the very split it then reports, so its
numbers are optimistic. metrics.json names the file tested (``evaluated_checkpoint``) either way.

``eval_weights`` picks the weights of that file: ``ema`` (the default) the moving average of ``callbacks=ema``
when the run kept one, ``raw`` the optimizer's own (``spp_cls.lightning.ema``); metrics.json says which were
tested (``evaluated_weights``) and records the recipe's settings (``recipe``).
"""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from typing import Any, Optional, cast

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities.exceptions import SIGTERMException

from spp_cls.checkpointing import load_safe, resolve_resume_path
from spp_cls.checkpointing.resume_path import first_logged_step
from spp_cls.cli.builders import build_datamodule, build_trainer
from spp_cls.cli.environment import run_environment
from spp_cls.cli.errors import exit_on_user_error
from spp_cls.cli.evaluate import evaluate
from spp_cls.cli.results import write_results
from spp_cls.config.schema import TrainConfig
from spp_cls.config.validation import validate_train_config
from spp_cls.lightning import MONITOR, SppClassifier
from spp_cls.lightning.agreement import leave_together
from spp_cls.lightning.cluster import process_rank
from spp_cls.lightning.data_quality import skip_totals_of_all
from spp_cls.lightning.ema import EMA, checkpoint_weights, has_ema
from spp_cls.lightning.optim import effective_lr
from spp_cls.lightning.resume_checkpoint import ResumeCheckpoint
from spp_cls.lightning.signals import requeue_without_checkpoint
from spp_cls.models import model_name

log = logging.getLogger(__name__)


def build_module(cfg: DictConfig) -> SppClassifier:
    """The Lightning module of a run, with the learning rate scaled to the optimizer-step batch."""
    step_batch = cfg.data.batch_size * cfg.trainer.accumulate_grad_batches
    lr = effective_lr(cfg.optim.lr, step_batch, cfg.optim.base_batch_size, cfg.optim.lr_scaling)
    log.info(
        "learning rate %.4g (optim.lr=%g for %d images, step batch %d, lr_scaling=%s)",
        lr,
        cfg.optim.lr,
        cfg.optim.base_batch_size,
        step_batch,
        cfg.optim.lr_scaling,
    )
    return SppClassifier(
        model=cast(dict[str, Any], OmegaConf.to_container(cfg.model, resolve=True)),
        optim=cast(dict[str, Any], OmegaConf.to_container(cfg.optim, resolve=True)),
        num_classes=cfg.data.num_classes,
        input_size=cfg.data.crop_size,
        lr=lr,
        run_config=cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True)),
        seed=cfg.seed,
    )


def recipe_settings(cfg: DictConfig, trainer: pl.Trainer) -> dict[str, Any]:
    """The training recipe's switches as metrics.json records them (the report's settings): the optimizer,
    schedule, label smoothing, MixUp/CutMix, augmentation, EMA and gradient accumulation."""
    o = cfg.optim
    ema = [c for c in trainer.callbacks if isinstance(c, EMA)]  # type: ignore[attr-defined]  # set by Lightning
    return {
        "optimizer": o.get("name", "sgd"),
        "scheduler": o.scheduler,
        "warmup_epochs": o.get("warmup_epochs", 0.0),
        "weight_decay": o.weight_decay,
        "label_smoothing": o.get("label_smoothing", 0.0),
        "mixup_alpha": o.get("mixup_alpha", 0.0),
        "cutmix_alpha": o.get("cutmix_alpha", 0.0),
        "auto_augment": cfg.data.get("auto_augment", "none"),
        "ema_decay": ema[0].decay if ema else None,
        "accumulate_grad_batches": cfg.trainer.accumulate_grad_batches,
    }


def _evaluated_checkpoint(trainer: pl.Trainer, cfg: DictConfig) -> Optional[str]:
    """The checkpoint file that the after-training validation and protocols test (``eval_checkpoint``).

    ``last``: the resume checkpoint, written by ``ResumeCheckpoint.on_train_end`` after the last optimizer step,
    so it holds the weights the run ends with. ``best``: ModelCheckpoint's lowest-validation-error file. None
    when the run keeps no such file (e.g. ``callbacks=none``); the validation then tests the weights in memory,
    which are the final ones, and no protocol runs (they read a checkpoint file)."""
    if cfg.eval_checkpoint == "best":
        return _best_checkpoint(trainer)
    return _last_checkpoint(trainer)


def _best_checkpoint(trainer: pl.Trainer) -> Optional[str]:
    """ModelCheckpoint's file of the lowest validation error (None without one)."""
    callback = trainer.checkpoint_callback
    return (getattr(callback, "best_model_path", "") or None) if callback is not None else None


def _head_inputs(module: SppClassifier) -> dict[str, Optional[int]]:
    """fc6's input size and the bins it is (fc6 inputs / conv channels), for the report's list of departures from
    the paper (36 bins without SPP, 50 with the 4-level pyramid); None when the model has no head."""
    fc6 = getattr(getattr(module.model, "pre_logits", None), "fc6", None)
    if not isinstance(fc6, torch.nn.Linear):
        return {"fc6_inputs": None, "bins": None}
    channels = getattr(module.model, "num_features", 0)
    return {"fc6_inputs": fc6.in_features, "bins": fc6.in_features // channels if channels else None}


def _final_metrics(trainer: pl.Trainer, module: SppClassifier, datamodule: Any, cfg: DictConfig) -> dict[str, Any]:
    """Validation metrics of the checkpoint ``eval_checkpoint`` names (of the weights in memory, the final ones,
    when the run keeps no such file), and what the report needs to know about the run."""
    best = _best_checkpoint(trainer)
    evaluated = _evaluated_checkpoint(trainer, cfg)
    if cfg.eval_checkpoint == "best" and not best:
        log.warning("eval_checkpoint=best, but the run keeps no best checkpoint: testing the final weights")
    results: dict[str, Any] = {}
    weights = "raw"  # the weights in memory (no checkpoint file) are the raw ones
    if cfg.validate_best and not trainer.fast_dev_run:  # type: ignore[attr-defined]  # set by Lightning's setup
        ckpt_path, weights = _weights_to_validate(module, evaluated, cfg.eval_weights)
        log.info(
            "validating the %s weights of %s (eval_checkpoint=%s)",
            weights,
            evaluated or "the final model in memory",
            cfg.eval_checkpoint,
        )
        results = dict(trainer.validate(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)[0])
    results.update(
        model=model_name(cfg.model.arch, cfg.model.spp),
        pyramid=list(cfg.model.pyramid) if cfg.model.spp else None,
        params=sum(p.numel() for p in module.model.parameters()),
        epochs=trainer.current_epoch,
        global_step=trainer.global_step,
        eval_checkpoint=cfg.eval_checkpoint,
        evaluated_checkpoint=evaluated,
        eval_weights=cfg.eval_weights,
        evaluated_weights=weights,
        recipe=recipe_settings(cfg, trainer),
        best_checkpoint=best,
        last_checkpoint=_last_checkpoint(trainer),
        step_batch=cfg.data.batch_size * cfg.trainer.accumulate_grad_batches,
        lr=module.hparams["lr"],
        lrn_input_scale=cfg.model.get("lrn_input_scale"),
        **_head_inputs(module),
    )
    return results


def _weights_to_validate(
    module: SppClassifier, evaluated: Optional[str], eval_weights: str
) -> tuple[Optional[str], str]:
    """What ``trainer.validate`` gets as ``ckpt_path`` to test ``eval_weights`` of the file ``evaluated``, and
    which weights those are. Lightning loads a checkpoint's ``state_dict``, which is the EMA when the run kept
    one; the raw weights of such a file are loaded into the module here instead (and no path is given)."""
    if evaluated is None:
        return None, "raw"
    checkpoint = load_safe(evaluated, mmap=True)
    state, weights = checkpoint_weights(checkpoint, eval_weights)
    if weights == "raw" and has_ema(checkpoint):
        module.load_state_dict(state)
        return None, weights
    return evaluated, weights


def _last_checkpoint(trainer: pl.Trainer) -> Optional[str]:
    """The resume checkpoint the run leaves behind (None without a ResumeCheckpoint callback)."""
    callbacks = trainer.callbacks  # type: ignore[attr-defined]  # set by Lightning's callback connector
    paths = [c.path for c in callbacks if isinstance(c, ResumeCheckpoint) and c.path.is_file()]
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
    """Train one model as configured; returns the validation top-1 error of the tested checkpoint (for sweepers)."""
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
    for callback in trainer.callbacks:  # type: ignore[attr-defined]  # set by Lightning's callback connector
        if isinstance(callback, EMA):  # training's validations test the weights that will be reported
            callback.validate_average = cfg.eval_weights == "ema"
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume, weights_only=True)
    except SIGTERMException:  # Lightning exits with status 0 here; a stopped run must not look finished
        log.warning(
            "stopped by SIGTERM after checkpoint %s; the same command (ckpt_path=auto) continues the run",
            _last_checkpoint(trainer),
        )
        sys.exit(128 + signal.SIGTERM)
    with requeue_without_checkpoint(trainer):  # a requeue now resumes from last.ckpt and evaluates again
        results = _final_metrics(trainer, module, datamodule, cfg)
        results.update(skip_totals_of_all(trainer))
        if cfg.evaluate_protocols and not trainer.fast_dev_run:  # type: ignore[attr-defined]  # set by Lightning's setup
            if results.get("evaluated_checkpoint"):
                evaluate(
                    [results["evaluated_checkpoint"]],
                    cfg,
                    [],
                    run_dir / "eval",
                    list(cfg.evaluate_protocols),
                    trainer=trainer,
                    skip_inapplicable=True,
                    schema=TrainConfig,
                )
            else:
                log.warning(
                    "evaluate_protocols=%s not run: the run keeps no %s checkpoint to test (evaluate.py takes "
                    "a checkpoint file)",
                    list(cfg.evaluate_protocols),
                    cfg.eval_checkpoint,
                )
        if trainer.is_global_zero:  # every DDP process gets the same synced metrics; one writes them
            results["environment"] = run_environment(trainer.strategy.root_device, trainer.world_size)
            path = write_results(run_dir, results)
            log.info("final metrics: %s", {k: results[k] for k in sorted(results) if k.startswith("val/")})
            log.info("wrote %s; run directory: %s", path, run_dir)
        leave_together()
    return results.get(MONITOR)
