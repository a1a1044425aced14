"""A DataLoader that tells its dataset and batch sampler the epoch right when an epoch's iteration starts.

Lightning calls ``set_epoch`` on ``loader.sampler`` / ``loader.batch_sampler.sampler`` at the start of each
epoch, but creates the first iterator (the one that spawns workers and prefetches batches) *before* that
call, so a run resumed at epoch k would read its first epoch in epoch 0's order; and an ``IterableDataset``
(the shard reader) has no sampler Lightning could reach at all. This loader asks ``epoch_fn`` (the trainer's
epoch counter) each time it is iterated and sets it first, so the order, the input size and the
augmentation of an epoch are functions of (seed, epoch) however the run got there.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Optional

from torch.utils.data import DataLoader


class EpochAwareDataLoader(DataLoader):
    """``DataLoader`` plus ``epoch_fn() -> int``, applied to the dataset and batch sampler before iterating.

    With an iterable dataset the epoch reaches the workers only if they are started anew for each epoch:
    use ``persistent_workers=False`` there (the shard reader does).
    """

    def __init__(self, *args: Any, epoch_fn: Optional[Callable[[], int]] = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.epoch_fn = epoch_fn

    def __iter__(self) -> Iterator[Any]:
        if self.epoch_fn is not None:
            epoch = self.epoch_fn()
            for target in (self.dataset, self.batch_sampler):
                set_epoch = getattr(target, "set_epoch", None)
                if callable(set_epoch):
                    set_epoch(epoch)
        return super().__iter__()
