"""Bookkeeping of skipped inputs: nothing is lost silently, and a data set that is mostly broken stops the
run early instead of training on what is left.

One tracker per split and process. Batches report how many samples they dropped and which (``skipped``,
``skipped_paths``; shard readers add ``skipped_shards``). The run fails with ``DataQualityError`` once the
skipped samples of an epoch exceed ``max_fraction`` of the epoch's expected samples, which can be long before
the epoch ends. One process raises at the batch that crosses the limit. Under DDP a process must not leave
alone (the others would wait in a collective until the process group times out): its tracker is ``deferred``,
only records the breach, and all processes raise together after a vote at the next decision step
(``spp_cls.lightning.agreement``, ``DataQualityGuard``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class DataQualityError(RuntimeError):
    """More inputs were unreadable than ``data.max_skip_fraction`` allows."""


@dataclass
class SkipTracker:
    split: str
    expected: int  # samples this process reads per epoch
    max_fraction: float
    keep: int = 10  # how many paths to remember per epoch
    epoch_skipped: int = 0
    total_skipped: int = 0
    total_shards_skipped: int = 0
    first_paths: list[str] = field(default_factory=list)
    shard_errors: list[str] = field(default_factory=list)
    deferred: bool = False  # record a breach for a collective decision instead of raising at once

    def update(self, batch: dict[str, Any]) -> None:
        count = int(batch.get("skipped", 0))
        shards = list(batch.get("skipped_shards", ()))
        self.epoch_skipped += count
        self.total_skipped += count
        self.total_shards_skipped += len(shards)
        room = self.keep - len(self.first_paths)
        if room > 0:
            self.first_paths.extend(list(batch.get("skipped_paths", ()))[:room])
        self.shard_errors.extend(shards[: max(0, self.keep - len(self.shard_errors))])
        if not self.deferred:
            self.check()

    def breach(self) -> str | None:
        """Why this epoch's skips exceed the limit (None while they do not)."""
        if self.epoch_skipped <= self.max_fraction * self.expected:
            return None
        return (
            f"{self.epoch_skipped} of the {self.expected} {self.split} images of this epoch could not be read "
            f"({self.epoch_skipped / max(1, self.expected):.2%} > data.max_skip_fraction={self.max_fraction}); "
            f"first: {self.first_paths}" + (f"; unreadable shards: {self.shard_errors}" if self.shard_errors else "")
        )

    def check(self) -> None:
        """Raise ``DataQualityError`` if this epoch's skips exceed the limit."""
        reason = self.breach()
        if reason is not None:
            raise DataQualityError(reason)

    def end_epoch(self) -> str | None:
        """A one-line report of this epoch's skips (None if there were none); starts the next epoch."""
        report = None
        if self.epoch_skipped or self.shard_errors:
            report = (
                f"{self.split}: skipped {self.epoch_skipped} unreadable images this epoch"
                f" ({self.epoch_skipped / max(1, self.expected):.3%}); first: {self.first_paths}"
            )
            if self.shard_errors:
                report += f"; unreadable shards: {self.shard_errors}"
        self.epoch_skipped, self.first_paths, self.shard_errors = 0, [], []
        return report
