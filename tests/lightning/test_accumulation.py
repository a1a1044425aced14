"""Gradient accumulation with multi-size training: every optimizer step sums the gradients of batches of one
input size. The sizes change per epoch and Lightning steps at an epoch's last batch even when the window is not
full, so no window mixes sizes; this test holds both facts to a real fit with a window that does not divide the
epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from spp_cls.data.config import DataConfig
from spp_cls.lightning import ClassificationDataModule, SppClassifier
from tests.helpers import STEP_OPTIM, quiet_trainer


class Windows(pl.Callback):
    """The input sizes of the batches of each optimizer step."""

    def __init__(self) -> None:
        self.windows: list[list[int]] = [[]]

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, *args: Any) -> None:
        self.windows[-1].append(int(batch["image"].shape[-1]))

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if trainer.global_step == len(self.windows):  # this batch ended a window: the optimizer stepped
            self.windows.append([])


def test_each_optimizer_step_accumulates_batches_of_one_input_size(tiny_data: Path, tmp_path: Path) -> None:
    config = DataConfig(
        name="tiny",
        root=str(tiny_data),
        num_classes=4,
        batch_size=16,  # 4 batches per epoch: windows of 3 and 1
        resize_size=73,
        crop_size=64,
        train_sizes=[64, 56],
        size_schedule="alternate",
    )
    module = SppClassifier(
        model=dict(arch="zf5", spp=True, width=0.125, fc_dim=32),
        optim=STEP_OPTIM,
        num_classes=4,
        input_size=64,
        lr=0.01,
    )
    spy = Windows()
    trainer = quiet_trainer(tmp_path, max_epochs=3, accumulate_grad_batches=3, limit_val_batches=0, callbacks=[spy])
    trainer.fit(module, datamodule=ClassificationDataModule(config, num_workers=0))
    windows = [w for w in spy.windows if w]
    assert trainer.global_step == 6
    assert windows == [[64] * 3, [64], [56] * 3, [56], [64] * 3, [64]]
