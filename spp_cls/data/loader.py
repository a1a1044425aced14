"""DataLoaders that follow the trainer: the epoch when an epoch's iteration starts, and where to resume.

Lightning calls ``set_epoch`` on ``loader.sampler`` / ``loader.batch_sampler.sampler`` at the start of each
epoch, but creates the first iterator (the one that spawns workers and prefetches batches) *before* that
call, so a run resumed at epoch k would read its first epoch in epoch 0's order; and an ``IterableDataset``
(the shard reader) has no sampler Lightning could reach at all. ``EpochAwareDataLoader`` asks ``epoch_fn``
(the trainer's epoch counter) each time it is iterated and sets it first, so the order, the input size and
the augmentation of an epoch are functions of (seed, epoch) however the run got there.

``ResumableDataLoader`` adds Lightning's stateful-loader interface (``state_dict``/``load_state_dict``, saved
in every checkpoint): its state is the trainer's position, (epoch, batches trained on), and a resumed run's
first iteration starts the batch sampler at that batch. The position comes from the trainer rather than from
counting yielded batches because Lightning fetches one batch ahead of the one it trains on (and workers
prefetch more): a count kept by the loader is ahead of what the checkpointed weights have seen.

Each loader draws its workers' base seeds from its own generator, not the global torch generator, so
creating an iterator (once per run or once per epoch, depending on resumes and worker persistence) never
shifts the global random stream that dropout uses. Augmentation does not use worker random state at all: each
sample's is seeded by (seed, epoch, index) in the batch sampler.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, cast

import torch
from torch.utils.data import DataLoader
from torch.utils.data.dataloader import _BaseDataLoaderIter

from spp_cls.data.sampling import ScheduledBatchSampler


def loader_generator(seed: int) -> torch.Generator:
    """A generator for ``DataLoader(generator=...)``: worker base seeds without touching the global stream."""
    return torch.Generator().manual_seed(seed)


class EpochAwareDataLoader(DataLoader):
    """``DataLoader`` plus ``epoch_fn() -> int``, applied to the dataset and batch sampler before iterating.

    With an iterable dataset the epoch reaches the workers only if they are started anew for each epoch:
    use ``persistent_workers=False`` there (the shard reader does).
    """

    def __init__(self, *args: Any, epoch_fn: Optional[Callable[[], int]] = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.epoch_fn = epoch_fn

    def __iter__(self) -> _BaseDataLoaderIter:
        if self.epoch_fn is not None:
            epoch = self.epoch_fn()
            for target in (self.dataset, self.batch_sampler):
                set_epoch = getattr(target, "set_epoch", None)
                if callable(set_epoch):
                    set_epoch(epoch)
        return super().__iter__()


class ResumableDataLoader(EpochAwareDataLoader):
    """An ``EpochAwareDataLoader`` whose batch sampler can start mid-epoch (``resume_at``).

    ``position_fn() -> (epoch, batches)`` reports the trainer's position (``spp_cls.lightning.position``).
    """

    def __init__(self, *args: Any, position_fn: Callable[[], tuple[int, int]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.position_fn = position_fn
        self._resume: Optional[tuple[int, int]] = None

    def state_dict(self) -> dict[str, int]:
        epoch, batches = self.position_fn()
        return {"epoch": epoch, "batches": batches}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume = (int(state["epoch"]), int(state["batches"]))

    def __iter__(self) -> _BaseDataLoaderIter:
        if self._resume is not None:
            (epoch, batches), self._resume = self._resume, None
            if self.epoch_fn is None or self.epoch_fn() == epoch:
                cast(ScheduledBatchSampler, self.batch_sampler).resume_at(batches)  # the sampler it is built with
        return super().__iter__()
