"""Callbacks that Lightning lacks."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytorch_lightning as pl

from spp_cls.lightning.datamodule import ClassificationDataModule

log = logging.getLogger(__name__)


class EpochSummary(pl.Callback):
    """One log line per epoch (into the run's train.log): epoch metrics, learning rate and duration.

    Cluster jobs have no progress bar worth reading; this is what their logs show instead.
    """

    def __init__(self, progress_every_minutes: float = 5.0) -> None:
        self._start = 0.0
        self._last_line = 0.0
        self.progress_every = 60.0 * progress_every_minutes

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # a run resumed inside an epoch starts there, without on_train_epoch_start
        self._start = self._last_line = time.monotonic()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = self._last_line = time.monotonic()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Inside a long epoch, a progress line every ``progress_every_minutes`` (cluster logs have no bar)."""
        now = time.monotonic()
        if not trainer.is_global_zero or self.progress_every <= 0 or now - self._last_line < self.progress_every:
            return
        self._last_line = now
        loss = trainer.callback_metrics.get("train/loss_step")
        log.info(
            "epoch %d: batch %d/%s%s (%.0fs)",
            trainer.current_epoch + 1,
            batch_idx + 1,
            trainer.num_training_batches,
            f" train/loss={loss.item():.4f}" if loss is not None else "",
            now - self._start,
        )

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        if not trainer.is_global_zero:
            _report_skips(trainer, ("train", "val"))
            return
        metrics = trainer.callback_metrics
        shown = " ".join(
            f"{key}={metrics[key].item():.4f}"
            for key in ("train/loss_epoch", "train/top1_err", "val/loss", "val/top1_err", "val/top5_err")
            if key in metrics
        )
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else float("nan")
        size = metrics.get("train/input_size")
        log.info(
            "epoch %d/%d: %s%s lr=%.3g (%.0fs)",
            trainer.current_epoch + 1,
            trainer.max_epochs,
            shown,
            f" size={size.item():.0f}" if size is not None else "",
            lr,
            time.monotonic() - self._start,
        )
        _report_skips(trainer, ("train", "val"))

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        _report_skips(trainer, ("test",))


def _report_skips(trainer: pl.Trainer, splits: tuple[str, ...]) -> None:
    """Log the data module's per-epoch report of unreadable inputs (every process logs its own)."""
    datamodule = trainer.datamodule  # type: ignore[attr-defined]  # set by Lightning's fit/validate/test
    if not isinstance(datamodule, ClassificationDataModule):
        return
    for split in splits:
        report = datamodule.end_epoch_report(split)
        if report:
            log.warning("epoch %d: %s", trainer.current_epoch + 1, report)
