"""Stop a run whose data is mostly unreadable on every process at once (``data.max_skip_fraction``).

Each process counts the inputs it could not read (``spp_cls.data.skips.SkipTracker``). One process raises
``DataQualityError`` at the batch that crosses the limit. Under DDP the trackers only record the breach, and
``DataQualityGuard`` turns it into a collective decision: a vote at each decision step of training and at the end
of every training, validation and test epoch (evaluation splits are not split into equal batch counts, so their
epoch end is the one point all processes share). If any process is over the limit, every process raises the same
error naming each process's reason, and the run ends with exit status 2 on all of them.
"""

from __future__ import annotations

from typing import Any, Iterable

import pytorch_lightning as pl

from spp_cls.data.skips import DataQualityError, SkipTracker
from spp_cls.lightning.agreement import gather_objects, is_decision_step, vote_max


def _trackers(trainer: pl.Trainer, splits: Iterable[str]) -> list[SkipTracker]:
    datamodule = trainer.datamodule  # type: ignore[attr-defined]  # set by Lightning's fit/validate/test
    skips: dict[str, SkipTracker] = getattr(datamodule, "skips", None) or {}
    return [skips[split] for split in splits if split in skips]


def check_together(trainer: pl.Trainer, splits: Iterable[str]) -> None:
    """Raise ``DataQualityError`` on every process if any process's tracker of ``splits`` is over its limit."""
    reasons = [reason for tracker in _trackers(trainer, splits) if (reason := tracker.breach()) is not None]
    if trainer.world_size == 1:
        if reasons:
            raise DataQualityError("; ".join(reasons))
        return
    [any_breach] = vote_max([int(bool(reasons))])
    if not any_breach:
        return
    per_rank = gather_objects(reasons)
    raise DataQualityError(" | ".join(f"process {rank}: {'; '.join(r)}" for rank, r in enumerate(per_rank) if r))


class DataQualityGuard(pl.Callback):
    """Enforce ``data.max_skip_fraction`` collectively (see the module docstring); ``build_trainer`` always adds it."""

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if is_decision_step(trainer):
            check_together(trainer, ("train",))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        check_together(trainer, ("train",))

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            check_together(trainer, ("val",))

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        check_together(trainer, ("test",))


def skip_totals_of_all(trainer: pl.Trainer) -> dict[str, int]:
    """The data module's totals of skipped images and shards, summed over all processes (a collective)."""
    totals: dict[str, int] = {}
    datamodule = trainer.datamodule  # type: ignore[attr-defined]  # set by Lightning's fit/validate/test
    for part in gather_objects(datamodule.skip_totals() if hasattr(datamodule, "skip_totals") else {}):
        for key, value in part.items():
            totals[key] = totals.get(key, 0) + int(value)
    return totals
