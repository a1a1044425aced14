"""ResumeCheckpoint inside a real fit: cluster signals are acted on at the next batch boundary, after a checkpoint;
mid-epoch checkpoints only where a resume is exact; the handlers are put back afterwards."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any, Callable

import pytest
import pytorch_lightning as pl

from spp_cls.checkpointing import load_safe
from spp_cls.data.config import DataConfig
from spp_cls.lightning import ClassificationDataModule, SafeCheckpointIO, SppClassifier
from spp_cls.lightning.position import training_position
from spp_cls.lightning.resume_checkpoint import ResumeCheckpoint
from tests.helpers import STEP_OPTIM as OPTIM
from tests.helpers import quiet_trainer


class AtBatchEnd(pl.Callback):
    """Runs ``action(trainer)`` at the end of every batch (listed before ResumeCheckpoint, so it runs first)."""

    def __init__(self, action: Callable[[pl.Trainer], None]) -> None:
        self.action = action

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        self.action(trainer)


class SavePositions(pl.Callback):
    """Where every checkpoint was taken: (epoch, batches of it done)."""

    def __init__(self) -> None:
        self.positions: list[tuple[int, int]] = []

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        self.positions.append(training_position(trainer))


def fit(
    data: Path, root: Path, callbacks: list[pl.Callback], every_minutes: float | None = None, **trainer: Any
) -> Path:
    """One epoch of 4 batches of 16 on the tiny data set; returns the path of last.ckpt."""
    module = SppClassifier(
        model=dict(arch="zf5", spp=True, width=0.125, fc_dim=32), optim=OPTIM, num_classes=4, input_size=64, lr=0.01
    )
    config = DataConfig(
        name="tiny", root=str(data), num_classes=4, batch_size=16, resize_size=73, crop_size=64, train_sizes=[64]
    )
    datamodule = ClassificationDataModule(config, num_workers=0)
    resume = ResumeCheckpoint(root / "checkpoints", every_minutes=every_minutes)
    quiet_trainer(root, max_epochs=1, plugins=[SafeCheckpointIO()], callbacks=[*callbacks, resume], **trainer).fit(
        module, datamodule=datamodule
    )
    return resume.path


def test_a_requeue_signal_is_handled_at_the_next_batch_boundary_after_a_checkpoint(
    tiny_data: Path, tmp_path: Path
) -> None:
    last = tmp_path / "checkpoints" / "last.ckpt"
    seen: list[tuple[int, int]] = []

    def requeue(signum: int, frame: Any) -> None:  # stands in for submitit's or Lightning's requeue handler
        seen.append((trainer_step[0], load_safe(last)["global_step"]))

    def send(trainer: pl.Trainer) -> None:
        trainer_step[0] = trainer.global_step
        if trainer.global_step == 2:
            os.kill(os.getpid(), signal.SIGUSR1)
            assert not seen  # recorded, not yet handled

    trainer_step = [0]
    previous = signal.signal(signal.SIGUSR1, requeue)
    try:
        fit(tiny_data, tmp_path, [AtBatchEnd(send)])
        assert seen == [(2, 2)]  # handled in the same batch end, with that batch's checkpoint on disk
        assert signal.getsignal(signal.SIGUSR1) == requeue  # our deferral is gone after the fit
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_sigterm_stops_after_a_checkpoint_at_the_next_batch_boundary(tiny_data: Path, tmp_path: Path) -> None:
    def terminate(trainer: pl.Trainer) -> None:
        if trainer.global_step == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(SystemExit):  # Lightning's SIGTERM handling, no longer delayed to the end of the epoch
        fit(tiny_data, tmp_path, [AtBatchEnd(terminate)])
    checkpoint = load_safe(tmp_path / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] == 1 and checkpoint["epoch"] == 0


def test_mid_epoch_checkpoints_only_at_exact_resume_points(tiny_data: Path, tmp_path: Path) -> None:
    """Not at an epoch's last batch (validation and the schedule come first) nor inside a gradient accumulation."""
    spy = SavePositions()
    fit(tiny_data, tmp_path, [spy], every_minutes=1e-9)
    assert spy.positions == [(0, 1), (0, 2), (0, 3), (1, 0)]  # after batches 1-3, then the end of training
    spy = SavePositions()
    fit(tiny_data, tmp_path / "accumulate", [spy], every_minutes=1e-9, accumulate_grad_batches=2)
    assert spy.positions == [(0, 2), (1, 0)]
    spy = SavePositions()
    fit(tiny_data, tmp_path / "boundaries", [spy], every_minutes=None)
    assert spy.positions == [(1, 0)]
