"""SGD and the learning-rate schedules of the paper, with the batch-size rule stated explicitly.

``optim.lr`` is the rate for an optimizer step over ``optim.base_batch_size`` images (0.01 at 128 follows
AlexNet [3], whose recipe the paper adopts). The step batch is the global ``data.batch_size`` times
``trainer.accumulate_grad_batches``; ``lr_scaling`` maps it to the rate actually used: ``linear``
(lr * batch / base), ``sqrt`` (lr * sqrt(batch / base)) or ``none``.

``optim.implementation`` picks how SGD updates the parameters: ``fused`` (one kernel for all of them; under
fp16 it also takes the gradient scaler's inf check without a device sync), ``foreach`` (a few multi-tensor
kernels), ``for_loop`` (one parameter at a time), or ``auto``: fused when every parameter is on a GPU, else
torch's default. The updates are the same.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from pytorch_lightning.utilities.types import OptimizerLRSchedulerConfig

LR_SCALINGS = ("linear", "sqrt", "none")
SCHEDULERS = ("plateau", "step")
IMPLEMENTATIONS = ("auto", "fused", "foreach", "for_loop")


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


def build_optimization(params: Any, optim: dict[str, Any], lr: float, monitor: str) -> OptimizerLRSchedulerConfig:
    """Lightning's ``configure_optimizers`` dict: SGD plus the plateau or step schedule.

    ``plateau`` divides the rate by 1/lr_factor when ``monitor`` has not improved for ``plateau_patience``
    epochs, at most ``lr_drops`` times (the paper: twice); ``step`` multiplies it by lr_factor at each of
    ``step_milestones`` (epochs).
    """
    params = list(params)
    optimizer = torch.optim.SGD(
        params,
        lr=lr,
        momentum=optim["momentum"],
        weight_decay=optim["weight_decay"],
        **sgd_implementation(params, optim.get("implementation", "auto")),
    )
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
    raise ValueError(f"optim.scheduler must be one of {list(SCHEDULERS)}; got {optim['scheduler']!r}")
