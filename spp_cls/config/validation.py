"""Start-up checks of a composed run config: every problem is reported at once, by its config key, before
any data is read or any model is built. (Unknown keys and wrong types are already rejected by the schema.)

This is the composition root's check: it imports the layers below it. Each layer's own settings are checked by
that layer, beside the code that uses them (``data.*``: ``spp_cls.data.config``), and reported here under their
keys; what is checked here directly is what crosses layers (the model against the data's sizes, the launch
against the trainer) or has no layer of its own (optim, trainer, callbacks).
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Callable, cast

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from spp_cls.config.schema import MULTI_SIZE_MAP_RATIO, RunConfig, TrainConfig, multi_size_map_ratio
from spp_cls.data.config import data_errors, valid_workers
from spp_cls.evaluation.config import protocol_errors
from spp_cls.evaluation.protocols import PROTOCOLS
from spp_cls.lightning.cluster import external_tasks, loader_workers
from spp_cls.lightning.ema import EVAL_WEIGHTS
from spp_cls.lightning.optim import FUSED_OPTIMIZERS, IMPLEMENTATIONS, LR_SCALINGS, OPTIMIZERS, SCHEDULERS
from spp_cls.lightning.resume_checkpoint import FORMER_TARGETS
from spp_cls.lightning.resume_checkpoint import TARGET as RESUME_TARGET
from spp_cls.models import ARCHITECTURES, check_pyramid
from spp_cls.models.architectures import BASELINE_BINS, BASELINE_POOLS
from spp_cls.models.lrn import LRN_MODES
from spp_cls.models.network import INIT_MODES
from spp_cls.models.timm_backbone import backbone_errors

log = logging.getLogger(__name__)
COMPILE_MODES = (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


#: which checkpoint a training run tests after training: last (the final model) | best (selected on validation)
EVAL_CHECKPOINTS = ("last", "best")


class ConfigError(ValueError):
    """The run config cannot work; the message names each offending key."""


def _checker(errors: list[str]) -> Callable[[bool, str], None]:
    def check(ok: bool, message: str) -> None:
        if not ok:
            errors.append(message)

    return check


def _model_errors(cfg: DictConfig, check: Callable[[bool, str], None]) -> None:
    m, d = cfg.model, cfg.data
    check(m.compile_mode in COMPILE_MODES, f"model.compile_mode={m.compile_mode!r} is not one of {list(COMPILE_MODES)}")
    if m.compile:
        backends = torch.compiler.list_backends(exclude_tags=())
        check(m.compile_backend in backends, f"model.compile_backend={m.compile_backend!r} is not one of {backends}")
    if m.backbone:
        _backbone_errors(cfg, check)
        return
    check(m.arch in ARCHITECTURES, f"model.arch={m.arch!r} is not one of {sorted(ARCHITECTURES)}")
    try:
        check_pyramid(list(m.pyramid))
    except ValueError as err:
        check(False, f"model.pyramid: {err}")
    check(m.width > 0, f"model.width must be > 0; got {m.width}")
    check(m.fc_dim >= 1, f"model.fc_dim must be >= 1; got {m.fc_dim}")
    check(0 <= m.dropout < 1, f"model.dropout must be in [0, 1); got {m.dropout}")
    check(m.lrn in LRN_MODES, f"model.lrn={m.lrn!r} is not one of {list(LRN_MODES)}")
    check(
        m.lrn_input_scale > 0,
        f"model.lrn_input_scale must be > 0 (1: the LRN's alpha as published); got {m.lrn_input_scale}",
    )
    check(m.init in INIT_MODES, f"model.init={m.init!r} is not one of {list(INIT_MODES)}")
    multi_size = len(set(d.train_sizes)) > 1
    check(
        m.spp or not multi_size,
        f"data.train_sizes={list(d.train_sizes)} (multi-size training) needs an SPP model: model.spp=false has a "
        f"fixed input size; use one size, e.g. data.train_sizes=[{d.crop_size}], or model.spp=true",
    )
    check(
        m.spp or list(d.train_sizes) == [d.crop_size],
        f"data.train_sizes={list(d.train_sizes)} differs from data.crop_size={d.crop_size}, which model.spp=false "
        f"is built for",
    )
    if m.arch not in ARCHITECTURES or d.crop_size < 1:
        return
    arch = ARCHITECTURES[m.arch]
    minimum = arch.min_input_size()
    check(
        d.crop_size >= minimum,
        f"data.crop_size={d.crop_size} is too small for model.arch={m.arch}: its conv stack needs >= {minimum}",
    )
    small = [s for s in d.train_sizes if s < minimum]
    check(
        not small and (d.size_schedule != "random" or min(d.train_sizes) >= minimum),
        f"data.train_sizes={list(d.train_sizes)}: {small} too small for model.arch={m.arch}, which needs >= {minimum}",
    )
    if not m.spp and d.crop_size >= minimum:
        _baseline_errors(cfg, check)
    if m.spp and multi_size and d.crop_size >= minimum:
        _multi_size_notes(cfg)


def _backbone_errors(cfg: DictConfig, check: Callable[[bool, str], None]) -> None:
    """A timm backbone (model=timm): both heads take any size, so multi-size training and the full-image
    protocols apply to either; the paper networks' keys (lrn, init, baseline_pool) do not apply."""
    m, d = cfg.model, cfg.data
    check(m.arch == m.backbone, f"model.arch={m.arch!r} must name model.backbone={m.backbone!r} (model=timm sets it)")
    try:
        check_pyramid(list(m.pyramid))
    except ValueError as err:
        check(False, f"model.pyramid: {err}")
    check(m.width > 0, f"model.width must be > 0; got {m.width}")
    check(0 <= m.dropout < 1, f"model.dropout must be in [0, 1); got {m.dropout}")
    sizes = [d.crop_size, *d.train_sizes] if d.crop_size >= 1 else []
    kwargs = OmegaConf.to_container(m.backbone_kwargs)
    for message in backbone_errors(
        m.backbone, m.width, m.fc_dim, m.pretrained, m.pretrained_file, cast(dict, kwargs), sizes
    ):
        check(False, message)


def _baseline_errors(cfg: DictConfig, check: Callable[[bool, str], None]) -> None:
    """The no-SPP baseline must end in the paper's 6x6 bins (fc6: 36 x C values against SPP's 50 x C), or the
    user opts out with model.baseline_pool=paper_window and is told what the comparison then is."""
    m, d = cfg.model, cfg.data
    arch = ARCHITECTURES[m.arch]
    side = arch.feature_size(d.crop_size)
    if m.baseline_pool not in BASELINE_POOLS:
        check(False, f"model.baseline_pool={m.baseline_pool!r} is not one of {list(BASELINE_POOLS)}")
        return
    bins = arch.baseline_grid(d.crop_size, m.baseline_pool)
    if m.baseline_pool == "paper_bins":
        check(
            bins == BASELINE_BINS,
            f"data.crop_size={d.crop_size} leaves a {side}x{side} conv map for model.arch={m.arch} without SPP: too "
            f"small for the paper's {BASELINE_BINS}x{BASELINE_BINS} last-pool bins (needs a crop >= "
            f"{arch.min_input_size(BASELINE_BINS)}); use a larger crop, model.spp=true, or opt out with "
            f"model.baseline_pool=paper_window (Table 1's window, fewer bins)",
        )
        return
    check(
        bins >= 1,
        f"data.crop_size={d.crop_size} leaves a {side}x{side} conv map, too small for the last pooling of "
        f"{m.arch} without SPP (model.baseline_pool=paper_window); use a larger crop or model.spp=true",
    )
    if 1 <= bins != BASELINE_BINS:
        log.warning(
            "model.baseline_pool=paper_window: the no-SPP %s pools its %dx%d conv map to %dx%d bins (fc6 sees "
            "%d x C values, the paper's 36 x C only at 224 px): not the paper's baseline against SPP's 50 bins",
            m.arch,
            side,
            side,
            bins,
            bins,
            bins * bins,
        )


def _multi_size_notes(cfg: DictConfig) -> None:
    """Warn when a multi-size run's smallest size shrinks the last conv map more than the paper's 180/224 did."""
    m, d = cfg.model, cfg.data
    smallest = min(d.train_sizes)
    ratio = multi_size_map_ratio(m.arch, smallest, d.crop_size)
    if ratio < MULTI_SIZE_MAP_RATIO:
        arch = ARCHITECTURES[m.arch]
        log.warning(
            "data.train_sizes=%s: at %d px the %s conv map is %dx%d against %dx%d at data.crop_size=%d "
            "(ratio %.2f; the paper's 180/224 keeps %.2f or more)",
            list(d.train_sizes),
            smallest,
            m.arch,
            arch.feature_size(smallest),
            arch.feature_size(smallest),
            arch.feature_size(d.crop_size),
            arch.feature_size(d.crop_size),
            d.crop_size,
            ratio,
            MULTI_SIZE_MAP_RATIO,
        )


def _data_errors(cfg: DictConfig, check: Callable[[bool, str], None]) -> None:
    """The data layer's own checks of ``data.*`` (``spp_cls.data.config``), with the run's readers of shards:
    processes (devices x nodes, when the device count is a number) and loader workers per process."""
    d, t = cfg.data, cfg.trainer
    readers = None
    if isinstance(t.devices, int) and valid_workers(d.num_workers):
        readers = (t.devices * t.num_nodes, loader_workers(d.num_workers, t.devices))
    for message in data_errors(d, "data.", readers):
        check(False, message)


def _protocol_errors(cfg: DictConfig, check: Callable[[bool, str], None]) -> None:
    """The evaluation layer's checks of ``protocol.*`` (``spp_cls.evaluation.config``), at start-up: a training
    run tests with them only after its last epoch."""
    for message in protocol_errors(cfg.protocol, cfg.data.crop_size):
        check(False, message)


def _optim_errors(cfg: DictConfig, check: Callable[[bool, str], None]) -> None:
    o, t = cfg.optim, cfg.trainer
    check(o.lr > 0, f"optim.lr must be > 0; got {o.lr}")
    check(o.base_batch_size >= 1, f"optim.base_batch_size must be >= 1; got {o.base_batch_size}")
    check(o.lr_scaling in LR_SCALINGS, f"optim.lr_scaling={o.lr_scaling!r} is not one of {list(LR_SCALINGS)}")
    check(0 <= o.momentum < 1, f"optim.momentum must be in [0, 1); got {o.momentum}")
    check(o.weight_decay >= 0, f"optim.weight_decay must be >= 0; got {o.weight_decay}")
    check(0 < o.lr_factor < 1, f"optim.lr_factor must be in (0, 1); got {o.lr_factor}")
    check(o.scheduler in SCHEDULERS, f"optim.scheduler={o.scheduler!r} is not one of {list(SCHEDULERS)}")
    check(
        o.implementation in IMPLEMENTATIONS,
        f"optim.implementation={o.implementation!r} is not one of {list(IMPLEMENTATIONS)}",
    )
    _recipe_errors(cfg, check)
    if o.scheduler == "cosine":
        check(t.max_epochs >= 1, f"optim.scheduler=cosine needs trainer.max_epochs >= 1; got {t.max_epochs}")
    elif o.scheduler == "plateau":
        check(o.lr_drops >= 0, f"optim.lr_drops must be >= 0; got {o.lr_drops}")
        check(o.plateau_patience >= 0, f"optim.plateau_patience must be >= 0; got {o.plateau_patience}")
        check(
            t.check_val_every_n_epoch == 1 and t.limit_val_batches != 0,
            "optim.scheduler=plateau watches the validation error every epoch: it needs "
            "trainer.check_val_every_n_epoch=1 and trainer.limit_val_batches != 0 (or use optim.scheduler=step)",
        )
    else:
        milestones = list(o.step_milestones)
        check(
            all(m >= 1 for m in milestones) and milestones == sorted(set(milestones)),
            f"optim.step_milestones must be increasing positive epochs; got {milestones}",
        )


def _recipe_errors(cfg: DictConfig, check: Callable[[bool, str], None]) -> None:
    """The modern recipe's switches (docs/recipe.md): optimizer, warmup, label smoothing, MixUp/CutMix, EMA."""
    o = cfg.optim
    check(o.name in OPTIMIZERS, f"optim.name={o.name!r} is not one of {list(OPTIMIZERS)}")
    check(
        o.implementation != "fused" or o.name in FUSED_OPTIMIZERS,
        f"optim.implementation=fused: optim.name={o.name!r} has no fused kernel (those with one: "
        f"{list(FUSED_OPTIMIZERS)})",
    )
    check(
        len(o.betas) == 2 and all(0 <= b < 1 for b in o.betas),
        f"optim.betas must be two numbers in [0, 1); got {list(o.betas)}",
    )
    check(o.eps > 0, f"optim.eps must be > 0; got {o.eps}")
    check(o.warmup_epochs >= 0, f"optim.warmup_epochs must be >= 0; got {o.warmup_epochs}")
    check(
        o.warmup_epochs == 0 or o.scheduler == "cosine",
        f"optim.warmup_epochs={o.warmup_epochs} needs optim.scheduler=cosine (got {o.scheduler})",
    )
    check(
        o.scheduler != "cosine" or cfg.trainer.max_epochs < 1 or o.warmup_epochs < cfg.trainer.max_epochs,
        f"optim.warmup_epochs={o.warmup_epochs} leaves no cosine in trainer.max_epochs={cfg.trainer.max_epochs}",
    )
    check(0 <= o.label_smoothing < 1, f"optim.label_smoothing must be in [0, 1); got {o.label_smoothing}")
    check(o.mixup_alpha >= 0, f"optim.mixup_alpha must be >= 0 (0: off); got {o.mixup_alpha}")
    check(o.cutmix_alpha >= 0, f"optim.cutmix_alpha must be >= 0 (0: off); got {o.cutmix_alpha}")
    eval_weights = cfg.get("eval_weights", "ema")
    check(eval_weights in EVAL_WEIGHTS, f"eval_weights={eval_weights!r} is not one of {list(EVAL_WEIGHTS)}")
    ema = cfg.callbacks.get("ema")
    if ema and "decay" in ema:
        check(0 < ema.decay < 1, f"callbacks.ema.decay must be in (0, 1); got {ema.decay}")


def _trainer_errors(cfg: DictConfig, check: Callable[[bool, str], None]) -> None:
    t = cfg.trainer
    check(t.max_epochs >= 1 or t.max_epochs == -1, f"trainer.max_epochs must be >= 1 (or -1); got {t.max_epochs}")
    check(
        t.accumulate_grad_batches >= 1, f"trainer.accumulate_grad_batches must be >= 1; got {t.accumulate_grad_batches}"
    )
    check(t.num_nodes >= 1, f"trainer.num_nodes must be >= 1; got {t.num_nodes}")


def _checkpoint_errors(cfg: DictConfig, check: Callable[[bool, str], None]) -> None:
    node = cfg.callbacks.get("checkpoint")
    if not node or node.get("_target_") not in (RESUME_TARGET, *FORMER_TARGETS):
        return
    minutes = node.get("every_minutes")
    check(minutes is None or minutes >= 0, f"callbacks.checkpoint.every_minutes must be >= 0 or null; got {minutes}")
    unknown = [name for name in node.get("signals", []) if name not in signal.Signals.__members__]
    check(not unknown, f"callbacks.checkpoint.signals: {unknown} are not signal names (e.g. SIGUSR1, SIGUSR2, SIGTERM)")


def _launch_errors(cfg: DictConfig, check: Callable[[bool, str], None]) -> None:
    """One process per device, started by Slurm/submitit or by Lightning, never both; none in a plain multirun."""
    t = cfg.trainer
    tasks = external_tasks()
    if tasks is not None:
        per_node, nodes = tasks
        check(
            t.devices == per_node,
            f"trainer.devices={t.devices} but {per_node} processes per node were started (Slurm --ntasks-per-node, "
            f"hydra.launcher.tasks_per_node): one process per device, so set trainer.devices={per_node}",
        )
        check(
            t.num_nodes == nodes,
            f"trainer.num_nodes={t.num_nodes} but the job has {nodes} nodes (hydra.launcher.nodes)",
        )
        return
    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    check(
        not multirun or (t.devices == 1 and t.num_nodes == 1),
        f"trainer.devices={t.devices} trainer.num_nodes={t.num_nodes} in a Hydra multirun (-m) with the basic "
        "launcher: Lightning would start the other DDP processes by re-running the whole command, sweep included. Use "
        "hydra/launcher=submitit_local (this machine) or hydra/launcher=submitit_slurm, which start one process per "
        "device for each job, e.g. python train.py -m hydra/launcher=submitit_local trainer.devices=2 "
        "trainer.strategy=ddp ...; or sweep with trainer.devices=1",
    )


def _schema_errors(cfg: DictConfig, schema: type, check: Callable[[bool, str], None]) -> bool:
    """Keys added with ``+key=value`` bypass Hydra's own schema check; merging into the schema catches them."""
    try:
        OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.to_container(cfg))
    except OmegaConfBaseException as err:
        check(False, f"{err.full_key or '<root>'}: {str(err.msg).splitlines()[0]}")
        return False
    return True


def validate_run_config(cfg: DictConfig, schema: type = RunConfig) -> None:
    """Raise ConfigError listing every problem of a training or evaluation config."""
    errors: list[str] = []
    check = _checker(errors)
    if not _schema_errors(cfg, schema, check):
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(errors))
    _data_errors(cfg, check)
    _protocol_errors(cfg, check)
    _model_errors(cfg, check)
    _optim_errors(cfg, check)
    _trainer_errors(cfg, check)
    _checkpoint_errors(cfg, check)
    _launch_errors(cfg, check)
    if errors:
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(errors))


def validate_train_config(cfg: DictConfig) -> None:
    """``validate_run_config`` plus the checks that only concern training."""
    validate_run_config(cfg, TrainConfig)
    if cfg.eval_checkpoint not in EVAL_CHECKPOINTS:
        raise ConfigError(
            f"invalid config:\n  - eval_checkpoint={cfg.eval_checkpoint!r} is not one of {list(EVAL_CHECKPOINTS)}"
        )
    unknown = [p for p in cfg.evaluate_protocols if p not in PROTOCOLS]
    if unknown:
        raise ConfigError(
            f"invalid config:\n  - evaluate_protocols: {unknown} unknown; choose from {sorted(PROTOCOLS)}"
        )
    if cfg.ckpt_path not in (None, "auto") and not Path(cfg.ckpt_path).is_file():
        raise ConfigError(f"invalid config:\n  - ckpt_path={cfg.ckpt_path} does not exist (use null or auto)")
