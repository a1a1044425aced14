"""Learning-rate scaling with the global batch and the paper's two-drop plateau schedule."""

from __future__ import annotations

import math

import pytest
import torch

from spp_cls.lightning.optim import build_optimization, effective_lr, restore_implementation

OPTIM = dict(
    momentum=0.9,
    weight_decay=5e-4,
    scheduler="plateau",
    lr_factor=0.1,
    lr_drops=2,
    plateau_patience=1,
    plateau_threshold=1e-3,
    step_milestones=[2, 4],
)


def test_effective_lr_rules() -> None:
    assert effective_lr(0.01, 128, 128, "linear") == 0.01
    assert effective_lr(0.01, 512, 128, "linear") == pytest.approx(0.04)
    assert effective_lr(0.01, 512, 128, "sqrt") == pytest.approx(0.02)
    assert effective_lr(0.01, 512, 128, "none") == 0.01
    with pytest.raises(ValueError, match="lr_scaling"):
        effective_lr(0.01, 1, 1, "cubic")


def test_plateau_divides_by_ten_at_most_twice() -> None:
    params = [torch.nn.Parameter(torch.zeros(1))]
    config = build_optimization(params, OPTIM, lr=0.01, monitor="val/top1_err")
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert config["lr_scheduler"]["monitor"] == "val/top1_err"
    lrs = []
    for _ in range(20):  # the error never improves
        scheduler.step(0.5)
        lrs.append(optimizer.param_groups[0]["lr"])
    assert sorted(set(lrs), reverse=True) == pytest.approx([0.01, 0.001, 0.0001])
    assert math.isclose(lrs[-1], 1e-4)


def test_step_schedule() -> None:
    params = [torch.nn.Parameter(torch.zeros(1))]
    config = build_optimization(params, dict(OPTIM, scheduler="step"), lr=0.1, monitor="x")
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(5):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001])
    assert optimizer.defaults["momentum"] == 0.9 and optimizer.defaults["weight_decay"] == 5e-4


def test_a_resumed_optimizer_takes_this_runs_implementation() -> None:
    params = [torch.nn.Parameter(torch.ones(3))]
    saved = torch.optim.SGD(params, lr=0.1, foreach=True).state_dict()
    optimizer = build_optimization(params, {**OPTIM, "implementation": "for_loop"}, 0.1, "val/loss")["optimizer"]
    optimizer.load_state_dict(saved)  # what a resume does: the saved groups, flags included
    assert optimizer.param_groups[0]["foreach"] is True
    restore_implementation(optimizer)
    assert optimizer.param_groups[0]["foreach"] is False and optimizer.param_groups[0]["lr"] == 0.1
