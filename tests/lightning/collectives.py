"""Callbacks for the DDP agreement tests: count the torch.distributed calls of each training step, send a signal.

train.py loads it like any callback: ``+callbacks.count._target_=tests.lightning.collectives.CountCollectives
+callbacks.count.out=DIR``. Each process writes ``DIR/rank<r>.json``: per training step, the global step before it
and the names of the collectives called from its start to the next step's start (its hooks included), before
validation. The DDP reducer's gradient all-reduce runs in C++ and is not counted: everything counted is extra.
"""

from __future__ import annotations

import functools
import json
import os
import signal as signal_module
from pathlib import Path
from typing import Any, Callable, Optional

import pytorch_lightning as pl
import torch.distributed as dist
import torch.distributed.distributed_c10d as c10d

NAMES = (
    "all_reduce",
    "broadcast",
    "all_gather",
    "all_gather_object",
    "broadcast_object_list",
    "barrier",
    "reduce",
    "all_gather_into_tensor",
    "reduce_scatter",
    "gather",
    "scatter",
    "gather_object",
    "send",
    "recv",
    "monitored_barrier",
    "all_to_all",
)


class CountCollectives(pl.Callback):
    def __init__(self, out: str) -> None:
        self.out = Path(out)
        self.steps: list[dict[str, Any]] = []
        self._open: Optional[dict[str, Any]] = None
        self._originals: dict[tuple[Any, str], Callable] = {}

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for module in (dist, c10d):
            for name in NAMES:
                original = getattr(module, name, None)
                if original is not None and (module, name) not in self._originals:
                    self._originals[(module, name)] = original
                    setattr(module, name, self._counting(name, original))

    def _counting(self, name: str, original: Callable) -> Callable:
        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if self._open is not None:
                self._open["calls"].append(name)
            return original(*args, **kwargs)

        return wrapper

    def _close(self) -> None:
        if self._open is not None:
            self.steps.append(self._open)
            self._open = None

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        self._close()
        self._open = {"global_step": trainer.global_step, "calls": []}

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close()
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(self.steps))

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for (module, name), original in self._originals.items():
            setattr(module, name, original)
        self._originals = {}


class SignalAt(pl.Callback):
    """Send ``signal`` (a name) to this process at the end of optimizer step ``step``, on every process (as a
    scheduler signals every task of a job)."""

    def __init__(self, step: int, signal: str = "SIGTERM") -> None:
        self.step, self.signal = step, signal

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), getattr(signal_module, self.signal))
