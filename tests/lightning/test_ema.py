"""The EMA callback in a real fit: the average saved in every checkpoint is the EMA of the raw weights after each
optimizer step, whatever the callback order (a checkpoint written before the callback's own update of the step
includes it); the module keeps its raw weights; eval_weights picks either from a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch

from spp_cls.data.config import DataConfig
from spp_cls.lightning import ClassificationDataModule, SafeCheckpointIO, SppClassifier
from spp_cls.lightning.ema import EMA, RAW_STATE, checkpoint_weights, has_ema
from spp_cls.lightning.resume_checkpoint import ResumeCheckpoint
from tests.helpers import STEP_OPTIM, quiet_trainer

DECAY = 0.5  # large steps, so a missed or doubled update shows


class Snapshots(pl.Callback):
    """The raw weights after every optimizer step, and the state_dict of every checkpoint (listed last)."""

    def __init__(self) -> None:
        self.raw: list[dict[str, torch.Tensor]] = []
        self.saved: list[tuple[int, dict[str, torch.Tensor]]] = []

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if trainer.global_step > len(self.raw):
            self.raw.append({k: v.detach().clone() for k, v in pl_module.state_dict().items()})

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        self.saved.append((trainer.global_step, {k: v.clone() for k, v in checkpoint["state_dict"].items()}))


def fit(data: Path, root: Path, ema_first: bool) -> tuple[SppClassifier, Snapshots, Path]:
    module = SppClassifier(
        model=dict(arch="zf5", spp=True, width=0.125, fc_dim=32),
        optim=STEP_OPTIM,
        num_classes=4,
        input_size=64,
        lr=0.01,
    )
    config = DataConfig(
        name="tiny", root=str(data), num_classes=4, batch_size=16, resize_size=73, crop_size=64, train_sizes=[64]
    )
    resume = ResumeCheckpoint(root / "checkpoints", every_minutes=1e-9)  # a checkpoint after every step
    ema, spy = EMA(decay=DECAY), Snapshots()
    quiet_trainer(
        root,
        max_epochs=1,
        plugins=[SafeCheckpointIO()],
        callbacks=[ema, resume, spy] if ema_first else [resume, ema, spy],
    ).fit(module, datamodule=ClassificationDataModule(config, num_workers=0))
    return module, spy, resume.path


def ema_of(snapshots: list[dict[str, torch.Tensor]], key: str) -> torch.Tensor:
    average = snapshots[0][key].float()
    for state in snapshots[1:]:
        average = DECAY * average + (1 - DECAY) * state[key].float()
    return average


@pytest.mark.parametrize("ema_first", [True, False])
def test_every_checkpoint_holds_the_ema_of_the_steps_so_far(tiny_data: Path, tmp_path: Path, ema_first: bool) -> None:
    module, spy, last = fit(tiny_data, tmp_path, ema_first)
    assert [step for step, _ in spy.saved] == [1, 2, 3, 4]  # 4 steps of 16 images, then the end
    key = "model.fc8.weight"
    for step, state in spy.saved:
        assert torch.allclose(state[key], ema_of(spy.raw[:step], key), atol=1e-7), step
    checkpoint = torch.load(last, weights_only=True)
    assert has_ema(checkpoint)
    assert torch.equal(checkpoint[RAW_STATE][key], module.state_dict()[key])  # the module keeps the raw weights
    assert torch.equal(checkpoint[RAW_STATE][key], spy.raw[-1][key])
    assert not torch.equal(checkpoint["state_dict"][key], checkpoint[RAW_STATE][key])


def test_eval_weights_picks_the_average_or_the_raw_weights() -> None:
    average, raw = {"w": torch.zeros(1)}, {"w": torch.ones(1)}
    with_ema = {"state_dict": average, RAW_STATE: raw}
    assert checkpoint_weights(with_ema, "ema") == (average, "ema")
    assert checkpoint_weights(with_ema, "raw") == (raw, "raw")
    plain = {"state_dict": raw}
    assert checkpoint_weights(plain, "ema") == (raw, "raw") == checkpoint_weights(plain, "raw")
    with pytest.raises(ValueError, match="eval_weights"):
        checkpoint_weights(plain, "swa")
    with pytest.raises(ValueError, match="decay"):
        EMA(decay=1.0)
