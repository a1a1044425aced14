"""The modern recipe's optimizers (timm) and the warmup + cosine schedule, and their exact resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from spp_cls.data.config import DataConfig
from spp_cls.lightning import ClassificationDataModule, SppClassifier
from spp_cls.lightning.optim import build_optimization, warmup_steps
from tests.helpers import STEP_OPTIM, quiet_trainer

RECIPE = dict(STEP_OPTIM, name="adamw", betas=[0.8, 0.99], eps=1e-6, weight_decay=0.05, scheduler="cosine")


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))


def lrs(config: dict, steps: int) -> list[float]:
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    seen = []
    for _ in range(steps):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return seen


def test_warmup_then_cosine_to_zero_per_step() -> None:
    config = build_optimization(net(), dict(RECIPE, warmup_epochs=1.0), 0.3, "x", total_steps=10, steps_per_epoch=2)
    assert config["lr_scheduler"]["interval"] == "step"
    seen = lrs(config, 11)
    assert seen[:3] == pytest.approx([0.1, 0.2, 0.3])  # 2 warmup steps from lr/3, then the peak
    cosine = seen[2:]
    assert all(a > b for a, b in zip(cosine, cosine[1:]))
    assert cosine[4] == pytest.approx(0.15) and cosine[-1] == pytest.approx(0.0, abs=1e-12)  # half-way, end


def test_cosine_without_warmup_and_the_warmup_rounding() -> None:
    seen = lrs(build_optimization(net(), RECIPE, 0.2, "x", total_steps=4, steps_per_epoch=4), 5)
    assert seen == pytest.approx([0.2, 0.2 * (1 + 2**-0.5) / 2, 0.1, 0.2 * (1 - 2**-0.5) / 2, 0.0])
    assert warmup_steps(0.5, 30, 10) == 5 and warmup_steps(10, 30, 10) == 30
    with pytest.raises(ValueError, match="max_epochs"):
        build_optimization(net(), RECIPE, 0.1, "x")


def test_adamw_from_timm_decays_weights_but_not_biases() -> None:
    optimizer = build_optimization(net(), RECIPE, 0.1, "x", total_steps=4, steps_per_epoch=4)["optimizer"]
    assert isinstance(optimizer, torch.optim.AdamW)
    decays = sorted((g["weight_decay"], sum(p.dim() for p in g["params"])) for g in optimizer.param_groups)
    assert decays == [(0.0, 2), (0.05, 6)]  # two 1-d biases; conv (4-d) and linear (2-d) weights
    assert optimizer.defaults["betas"] == (0.8, 0.99) and optimizer.defaults["eps"] == 1e-6


@pytest.mark.parametrize("name", ["lamb", "lion"])
def test_the_other_timm_optimizers_build_and_step(name: str) -> None:
    model = net()
    optimizer = build_optimization(model, dict(RECIPE, name=name), 0.01, "x", total_steps=4, steps_per_epoch=4)[
        "optimizer"
    ]
    before = [p.detach().clone() for p in model.parameters()]
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    optimizer.step()
    assert optimizer.defaults["betas"] == (0.8, 0.99)
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    with pytest.raises(ValueError, match="no fused kernel"):
        build_optimization(model, dict(RECIPE, name=name, implementation="fused"), 0.01, "x", 4, 4)


def test_the_paper_sgd_is_unchanged_and_decays_every_parameter() -> None:
    optimizer = build_optimization(net(), STEP_OPTIM, 0.1, "x")["optimizer"]
    assert type(optimizer) is torch.optim.SGD and len(optimizer.param_groups) == 1
    assert optimizer.param_groups[0]["weight_decay"] == 5e-4


def test_optimizer_and_schedule_resume_exactly_from_their_state() -> None:
    """What a resumed run does: new objects, then the saved states; the next updates and rates are the same."""
    settings = dict(RECIPE, warmup_epochs=1.0)
    runs = []
    for resumed in (False, True):
        model = net()
        config = build_optimization(model, settings, 0.1, "x", total_steps=8, steps_per_epoch=2)
        optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
        for step in range(6):
            if resumed and step == 3:  # rebuild from the states saved after 3 steps
                state = (optimizer.state_dict(), scheduler.state_dict(), model.state_dict())
                model = net()
                model.load_state_dict(state[2])
                config = build_optimization(model, settings, 0.1, "x", total_steps=8, steps_per_epoch=2)
                optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
                optimizer.load_state_dict(state[0])
                scheduler.load_state_dict(state[1])
            optimizer.zero_grad()
            model(torch.ones(2, 3, 8, 8) * step).square().sum().backward()
            optimizer.step()
            scheduler.step()
        runs.append(([p.detach() for p in model.parameters()], optimizer.param_groups[0]["lr"]))
    assert runs[0][1] == runs[1][1]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][0], runs[1][0]))


@pytest.mark.parametrize(("max_steps", "warmup_epochs"), [(-1, 0.0), (5, 1.0)])
def test_a_fit_cut_by_max_steps_ends_its_cosine_at_its_last_step(
    tiny_data: Path, tmp_path: Path, max_steps: int, warmup_epochs: float
) -> None:
    """The cosine runs to 0 over the steps the fit takes: 3 epochs of 4 steps, or ``trainer.max_steps`` when that
    stops the fit sooner (warmup still counted in epochs of 4 steps)."""
    pl.seed_everything(0)
    module = SppClassifier(
        model=dict(arch="zf5", spp=True, width=0.125, fc_dim=32),
        optim=dict(RECIPE, warmup_epochs=warmup_epochs),
        num_classes=4,
        input_size=64,
        lr=0.01,
    )
    config = DataConfig(
        name="tiny", root=str(tiny_data), num_classes=4, batch_size=16, resize_size=73, crop_size=64, train_sizes=[64]
    )
    trainer = quiet_trainer(tmp_path, max_epochs=3, max_steps=max_steps)
    trainer.fit(module, datamodule=ClassificationDataModule(config, num_workers=0))
    steps = 12 if max_steps < 0 else max_steps
    assert trainer.global_step == steps
    scheduler = trainer.lr_scheduler_configs[0].scheduler
    assert scheduler.last_epoch == steps  # type: ignore[union-attr]
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
