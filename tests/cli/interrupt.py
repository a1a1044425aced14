"""Callbacks for the interruption tests: kill the training process with SIGKILL at a chosen point, or pace it.

train.py loads them like any callback: ``+callbacks.kill._target_=tests.cli.interrupt.KillAt +callbacks.kill.step=6``
(train.py runs from the repository root, so ``tests`` is importable). They come after the checkpoint callbacks,
so a kill at a batch end or an epoch start comes after that point's checkpoint.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any, Optional

import pytorch_lightning as pl


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class KillAt(pl.Callback):
    """SIGKILL this process after optimizer step ``step`` (at that batch's end) or at the start of epoch
    ``epoch_start`` (0-based); with ``in_checkpoint_write``, instead during the next checkpoint write after that
    point: when the temporary file is written and synced, before it replaces the checkpoint."""

    def __init__(
        self, step: Optional[int] = None, epoch_start: Optional[int] = None, in_checkpoint_write: bool = False
    ) -> None:
        self.step, self.epoch_start, self.in_write = step, epoch_start, in_checkpoint_write

    def _trigger(self) -> None:
        if not self.in_write:
            die()
        fsync = os.fsync

        def fsync_then_die(fd: int) -> None:
            fsync(fd)
            if ".ckpt.tmp-" in os.readlink(f"/proc/self/fd/{fd}"):
                die()

        os.fsync = fsync_then_die  # the atomic writer syncs its temporary file before renaming it

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step == self.step:
            self._trigger()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch == self.epoch_start:
            self._trigger()


class Pace(pl.Callback):
    """Make every training batch take at least ``seconds`` of wall time (sleeping changes no result), so a run
    lasts long enough for a time limit to interrupt it however fast the machine is. ``first_run_only``: pace only
    a Slurm job's first run (``SLURM_RESTART_COUNT`` unset or 0), so that a requeued run finishes at full speed."""

    def __init__(self, seconds: float, first_run_only: bool = False) -> None:
        self.seconds = seconds
        self.active = not first_run_only or int(os.environ.get("SLURM_RESTART_COUNT", "0")) == 0
        self._start = 0.0

    def on_train_batch_start(self, *args: Any) -> None:
        self._start = time.monotonic()

    def on_train_batch_end(self, *args: Any) -> None:
        if self.active:
            time.sleep(max(0.0, self.seconds - (time.monotonic() - self._start)))
