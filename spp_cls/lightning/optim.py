"""The optimizers and learning-rate schedules: the paper's (SGD, plateau or step) and a modern recipe's (AdamW
and friends through timm, linear warmup then cosine), with the batch-size rule stated explicitly.

``optim.lr`` is the rate for an optimizer step over ``optim.base_batch_size`` images (0.01 at 128 follows
AlexNet [3], whose recipe the paper adopts). The step batch is the global ``data.batch_size`` times
``trainer.accumulate_grad_batches``; ``lr_scaling`` maps it to the rate actually used: ``linear``
(lr * batch / base), ``sqrt`` (lr * sqrt(batch / base)) or ``none``.

``optim.implementation`` picks how SGD updates the parameters: ``fused`` (one kernel for all of them; under
fp16 it also takes the gradient scaler's inf check without a device sync), ``foreach`` (a few multi-tensor
kernels), ``for_loop`` (one parameter at a time), or ``auto``: fused when every parameter is on a GPU, else
torch's default. The updates are the same.

``optim.name`` other than ``sgd`` builds the optimizer with ``timm.optim.create_optimizer_v2`` (``optim.betas``,
``optim.eps``; timm puts biases and normalisation weights in a group without weight decay, as modern recipes
do, while the paper's SGD decays every parameter). ``optim.scheduler=cosine`` steps every optimizer step: a
linear warmup over ``optim.warmup_epochs`` from lr / (warmup steps + 1) to lr, then a cosine to 0 at the last
step (torch's ``LinearLR`` and ``CosineAnnealingLR`` in a ``SequentialLR``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterable, Optional

import timm.optim
import torch
from torch import nn

if TYPE_CHECKING:
    from pytorch_lightning.utilities.types import OptimizerLRSchedulerConfig

LR_SCALINGS = ("linear", "sqrt", "none")
SCHEDULERS = ("plateau", "step", "cosine")
IMPLEMENTATIONS = ("auto", "fused", "foreach", "for_loop")
#: optim.name: the paper's SGD (torch), or one of timm's optimizers with two betas (create_optimizer_v2)
OPTIMIZERS = ("sgd", "adamw", "lamb", "lion")
#: the optimizers whose torch implementation has a fused kernel (optim.implementation=fused)
FUSED_OPTIMIZERS = ("sgd", "adamw")


def sgd_implementation(params: list[torch.Tensor], implementation: str) -> dict[str, bool]:
    """``torch.optim.SGD``'s ``fused``/``foreach`` arguments for ``optim.implementation``."""
    if implementation == "auto":
        return {"fused": True} if params and all(p.is_cuda for p in params) else {}
    if implementation == "fused":
        return {"fused": True}
    if implementation == "foreach":
        return {"foreach": True}
    if implementation == "for_loop":
        return {"foreach": False}
    raise ValueError(f"optim.implementation must be one of {list(IMPLEMENTATIONS)}; got {implementation!r}")


def restore_implementation(optimizer: torch.optim.Optimizer) -> None:
    """Give every parameter group the ``fused``/``foreach`` flags this run's optimizer was built with.

    ``load_state_dict`` (a resumed run) replaces the parameter groups with the saved ones, flags included, so a
    run resumed with another ``optim.implementation`` (or on another kind of device) would silently keep the old
    one; the optimizer's ``defaults`` still hold what this run's config asked for."""
    for group in optimizer.param_groups:
        for flag in ("fused", "foreach"):
            if flag in optimizer.defaults:
                group[flag] = optimizer.defaults[flag]


def effective_lr(lr: float, step_batch: int, base_batch_size: int, scaling: str) -> float:
    """The learning rate for an optimizer step over ``step_batch`` images."""
    ratio = step_batch / base_batch_size
    if scaling == "linear":
        return lr * ratio
    if scaling == "sqrt":
        return lr * math.sqrt(ratio)
    if scaling == "none":
        return lr
    raise ValueError(f"optim.lr_scaling must be one of {list(LR_SCALINGS)}; got {scaling!r}")


def timm_implementation(params: list[torch.Tensor], name: str, implementation: str) -> dict[str, Any]:
    """``create_optimizer_v2``'s ``foreach``/``fused`` arguments for ``optim.implementation`` (fused: AdamW only)."""
    if implementation == "auto":
        return {"fused": True} if name == "adamw" and params and all(p.is_cuda for p in params) else {}
    if implementation == "fused":
        if name not in FUSED_OPTIMIZERS:
            raise ValueError(f"optim.implementation=fused: optim.name={name!r} has no fused kernel")
        return {"fused": True}
    if implementation in ("foreach", "for_loop"):
        return {"foreach": implementation == "foreach"}
    raise ValueError(f"optim.implementation must be one of {list(IMPLEMENTATIONS)}; got {implementation!r}")


def build_optimizer(
    model: nn.Module | Iterable[torch.Tensor], optim: dict[str, Any], lr: float
) -> torch.optim.Optimizer:
    """``optim.name``'s optimizer over ``model``'s parameters (SGD: all decayed; timm's: biases and norms not, which
    it can tell only from a module: given bare parameters it decays them all)."""
    name = optim.get("name", "sgd")
    params: list[torch.Tensor] = list(model.parameters()) if isinstance(model, nn.Module) else list(model)
    if name == "sgd":
        return torch.optim.SGD(
            params,
            lr=lr,
            momentum=optim["momentum"],
            weight_decay=optim["weight_decay"],
            **sgd_implementation(params, optim.get("implementation", "auto")),
        )
    if name not in OPTIMIZERS:
        raise ValueError(f"optim.name must be one of {list(OPTIMIZERS)}; got {name!r}")
    info = timm.optim.get_optimizer_info(name)
    extra: dict[str, Any] = {"betas": tuple(optim.get("betas", (0.9, 0.999)))}
    if info.has_eps:
        extra["eps"] = optim.get("eps", 1e-8)
    extra.update(timm_implementation(params, name, optim.get("implementation", "auto")))
    return timm.optim.create_optimizer_v2(
        model if isinstance(model, nn.Module) else params, opt=name, lr=lr, weight_decay=optim["weight_decay"], **extra
    )


def cosine_schedule(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """Linear warmup over ``warmup_steps`` optimizer steps, then a cosine to 0 at ``total_steps``."""
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps - warmup_steps))
    if warmup_steps <= 0:
        return cosine
    warmup = torch.optim.lr_scheduler.LinearLR(
        optimizer, start_factor=1.0 / (warmup_steps + 1), end_factor=1.0, total_iters=warmup_steps
    )
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [warmup, cosine], milestones=[warmup_steps])


def warmup_steps(warmup_epochs: float, total_steps: int, steps_per_epoch: float) -> int:
    """Optimizer steps of ``warmup_epochs`` epochs of ``steps_per_epoch`` steps, at most the run's ``total_steps``."""
    return min(total_steps, round(warmup_epochs * steps_per_epoch))


def build_optimization(
    model: nn.Module | Iterable[torch.Tensor],
    optim: dict[str, Any],
    lr: float,
    monitor: str,
    total_steps: Optional[float] = None,
    steps_per_epoch: Optional[float] = None,
) -> OptimizerLRSchedulerConfig:
    """Lightning's ``configure_optimizers`` dict: the optimizer plus the plateau, step or cosine schedule.

    ``plateau`` divides the rate by 1/lr_factor when ``monitor`` has not improved for ``plateau_patience``
    epochs, at most ``lr_drops`` times (the paper: twice); ``step`` multiplies it by lr_factor at each of
    ``step_milestones`` (epochs); ``cosine`` (per optimizer step) needs the fit's ``total_steps`` (to the end
    of the cosine, ``trainer.max_steps`` counted) and ``steps_per_epoch`` (for ``warmup_epochs``).
    """
    optimizer = build_optimizer(model, optim, lr)
    factor = optim["lr_factor"]
    if optim["scheduler"] == "plateau":
        scheduler: torch.optim.lr_scheduler.LRScheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer,
            mode="min",
            factor=factor,
            patience=optim["plateau_patience"],
            threshold=optim["plateau_threshold"],
            threshold_mode="abs",
            min_lr=lr * factor ** optim["lr_drops"],
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": monitor, "interval": "epoch"},
        }
    if optim["scheduler"] == "step":
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(optim["step_milestones"]), gamma=factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
    if optim["scheduler"] == "cosine":
        if not total_steps or not steps_per_epoch or not math.isfinite(total_steps):
            raise ValueError("optim.scheduler=cosine needs a finite run: trainer.max_epochs >= 1")
        warmup = warmup_steps(optim.get("warmup_epochs", 0.0), int(total_steps), steps_per_epoch)
        scheduler = cosine_schedule(optimizer, int(total_steps), warmup)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
    raise ValueError(f"optim.scheduler must be one of {list(SCHEDULERS)}; got {optim['scheduler']!r}")
