"""The throughput line: images/s and the share of time spent waiting for data, in train.log and the loggers."""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger
from torch.utils.data import DataLoader, Dataset

from spp_cls.lightning import SppClassifier
from spp_cls.lightning.throughput import Throughput, Window, describe
from tests.lightning.test_speed_switches import CLASSES, MODEL, OPTIM, batches


class Slow(Dataset):
    """Batches that take ``delay`` seconds each to load."""

    def __init__(self, delay: float, count: int) -> None:
        self.delay, self.data = delay, batches([48], count)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> dict[str, Any]:
        time.sleep(self.delay)
        return self.data[index]


def test_window_rates_and_the_line() -> None:
    window = Window()
    window.add(images=64, seconds=0.5, wait=0.05)
    window.add(images=64, seconds=0.5, wait=0.05)
    assert window.rate(world_size=1) == 128 and window.rate(world_size=4) == 512
    assert window.wait_share() == pytest.approx(0.1)
    assert describe(window, 4) == "512 images/s (4 devices), data wait 10%"
    window.add(images=0, seconds=1.0, wait=0.9)
    assert "starves the device" in describe(window, 1)


LOAD_S = 2.0  # seconds the slow loader takes a batch


def test_a_slow_loader_shows_as_data_wait(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Loading takes 2 s a batch, a step of this tiny model a few milliseconds (up to about a second on a CPU
    loaded four times over, with a first step's one-off set-up): most of the time is waiting, by a margin
    that holds on a busy machine (0.5 s a batch did not: a loaded CI run measured a wait share of 0.37)."""
    torch.manual_seed(0)
    module = SppClassifier(model=MODEL, optim=OPTIM, num_classes=CLASSES, input_size=48, lr=0.05)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        log_every_n_steps=2,
        logger=CSVLogger(tmp_path, name="", version=""),
        callbacks=[Throughput(every_minutes=0)],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with caplog.at_level(logging.INFO, logger="spp_cls.lightning.throughput"):
        trainer.fit(module, DataLoader(Slow(LOAD_S, 4), batch_size=None))
    lines = [r.getMessage() for r in caplog.records if r.name == "spp_cls.lightning.throughput"]
    assert len(lines) == 1 and lines[0].startswith("epoch 1: ") and "starves the device" in lines[0], lines
    with (tmp_path / "metrics.csv").open(newline="") as f:
        rows = [row for row in csv.DictReader(f) if row.get("perf/images_per_s")]
    assert [int(r["step"]) for r in rows] == [1, 3]  # the steps Lightning writes its own step metrics at
    for row in rows:
        assert 0 < float(row["perf/images_per_s"]) < 2 / LOAD_S  # 2 images a batch, at most one batch per LOAD_S
        assert 0.5 < float(row["perf/data_wait"]) <= 1
