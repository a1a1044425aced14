"""Training throughput in the run's log and loggers: images/s and the share of time spent waiting for data.

Host wall clock only, with no device synchronisation (one would stall the GPU's queue every step): over a window
of steps the host cannot run ahead of the device by more than a few steps, so the rate is the device's. The data
wait of a step is the time from the end of the previous step to the start of this one, where Lightning takes the
next batch from the loader and copies it to the device; a large share means the loader starves the device.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl

log = logging.getLogger(__name__)

STARVED = 0.2  # a data wait above this share of the time gets the advice to feed the device faster


@dataclass
class Window:
    """Images, wall seconds and data-wait seconds summed over a stretch of training steps."""

    images: int = 0
    seconds: float = 0.0
    wait: float = 0.0

    def add(self, images: int, seconds: float, wait: float) -> None:
        self.images += images
        self.seconds += seconds
        self.wait += wait

    def rate(self, world_size: int) -> float:
        """Images/s of all processes (each is assumed to run as fast as this one)."""
        return self.images * world_size / self.seconds if self.seconds > 0 else 0.0

    def wait_share(self) -> float:
        return self.wait / self.seconds if self.seconds > 0 else 0.0


class Throughput(pl.Callback):
    """Images/s (all devices) and data-wait share: to the loggers every ``log_every_n_steps`` steps
    (``perf/images_per_s``, ``perf/data_wait``), and a log line every ``every_minutes`` and at each epoch end.

    Time spent in validation inside an epoch is left out; the first step of an epoch includes starting the
    loader's workers, which is waiting for data too.
    """

    def __init__(self, every_minutes: float = 5.0) -> None:
        self.every_s = 60.0 * every_minutes
        self.epoch = Window()
        self.interval = Window()  # since the last report to the loggers
        self.line = Window()  # since the last log line
        self._last_end = 0.0
        self._start = 0.0
        self._last_line = 0.0
        self._logged_step = -1

    def _restart(self) -> None:
        self.epoch, self.interval, self.line = Window(), Window(), Window()
        self._last_end = self._last_line = time.perf_counter()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restart()  # a run resumed inside an epoch starts there, without on_train_epoch_start

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restart()

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        now = time.perf_counter()
        images = int(batch["target"].shape[0]) if batch.get("image") is not None else 0
        seconds, wait = now - self._last_end, self._start - self._last_end
        self._last_end = now
        for window in (self.epoch, self.interval, self.line):
            window.add(images, seconds, wait)
        if not trainer.is_global_zero:
            return
        step = trainer.global_step - 1  # the step Lightning files this batch's metrics under
        every = trainer.log_every_n_steps  # type: ignore[attr-defined]  # set by Lightning's logger connector
        if trainer.loggers and every > 0 and (step + 1) % every == 0 and step != self._logged_step:
            metrics = {
                "perf/images_per_s": self.interval.rate(trainer.world_size),
                "perf/data_wait": self.interval.wait_share(),
            }
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=step)
            self.interval, self._logged_step = Window(), step
        if self.every_s > 0 and now - self._last_line >= self.every_s:
            log.info(
                "epoch %d, batch %d: %s",
                trainer.current_epoch + 1,
                batch_idx + 1,
                describe(self.line, trainer.world_size),
            )
            self.line, self._last_line = Window(), now

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._last_end = time.perf_counter()  # validation inside an epoch is not waiting for training data

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero and self.epoch.images:
            log.info("epoch %d: %s", trainer.current_epoch + 1, describe(self.epoch, trainer.world_size))


def describe(window: Window, world_size: int) -> str:
    """'1234 images/s (2 devices), data wait 3%' plus advice when the loader starves the device."""
    share = window.wait_share()
    devices = f" ({world_size} devices)" if world_size > 1 else ""
    text = f"{window.rate(world_size):.0f} images/s{devices}, data wait {share:.0%}"
    if share > STARVED:
        text += " (the loader starves the device: raise data.num_workers, or use shards)"
    return text
