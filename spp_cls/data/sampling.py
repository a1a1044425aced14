"""Multi-size training (paper §4) as a pure function of (seed, epoch), and the samplers that apply it.

``input_size_for_epoch`` decides an epoch's input size: ``alternate`` cycles through ``train_sizes``
(epoch e uses ``train_sizes[e % len]``; ``[224, 180]`` starts at 224), ``random`` draws one size uniformly
from [min, max] of ``train_sizes`` per epoch. Because it depends on nothing else, every rank and every
loader worker (persistent or not) agrees on it without shared state, and a resumed run continues the
schedule exactly. Class folders use ``ScheduledBatchSampler``; shards call the same function when they batch.

Each sample also gets its own augmentation seed, ``sample_seed(seed, epoch, index)``, so its crop, flip and
lighting do not depend on the worker or rank that loads it.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from typing import Any, Callable, Iterator, NamedTuple, Optional, Sequence

from torch.utils.data import Dataset, DistributedSampler, Sampler

SIZE_SCHEDULES = ("alternate", "random")


def mix_seed(*parts: object) -> int:
    """A well-spread 63-bit integer from the parts (stable across processes and Python versions)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def input_size_for_epoch(sizes: Sequence[int], schedule: str, seed: int, epoch: int) -> int:
    """The training input size of ``epoch`` (0-based)."""
    if not sizes:
        raise ValueError("train_sizes must not be empty")
    if schedule == "alternate":
        return int(sizes[epoch % len(sizes)])
    if schedule == "random":
        return random.Random(mix_seed("size", seed, epoch)).randint(min(sizes), max(sizes))
    raise ValueError(f"size_schedule must be one of {list(SIZE_SCHEDULES)}; got {schedule!r}")


def sample_seed(seed: int, epoch: int, key: object) -> int:
    """The augmentation seed of one sample (``key``: its index, or its shard key) in one epoch."""
    return mix_seed("sample", seed, epoch, key)


class SampleKey(NamedTuple):
    """What a batch sampler hands the dataset: which image, at which size, with which augmentation seed."""

    index: int  # type: ignore[assignment]  # a field named like tuple.index shadows that method (intended)
    size: int
    seed: int


class ScheduledBatchSampler(Sampler[list[SampleKey]]):
    """Batches of one input size each, the size decided per epoch by ``input_size_for_epoch``.

    It wraps a ``DistributedSampler`` (which splits and shuffles the indices over ranks for (seed, epoch))
    and exposes it as ``.sampler``: Lightning calls ``set_epoch`` on exactly that attribute every epoch.
    ``resume_at(k)`` makes the next pass start at batch k of the epoch (a run resumed mid-epoch).
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        sizes: Sequence[int],
        schedule: str,
        seed: int,
        num_replicas: int = 1,
        rank: int = 0,
        drop_last: bool = True,
    ) -> None:
        if schedule not in SIZE_SCHEDULES:
            raise ValueError(f"size_schedule must be one of {list(SIZE_SCHEDULES)}; got {schedule!r}")
        self.sampler: DistributedSampler[int] = DistributedSampler(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed
        )
        self.batch_size, self.drop_last = batch_size, drop_last
        self.sizes, self.schedule, self.seed = tuple(int(s) for s in sizes), schedule, seed
        self._start = 0

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    def current_size(self) -> int:
        return input_size_for_epoch(self.sizes, self.schedule, self.seed, self.epoch)

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def resume_at(self, batch: int) -> None:
        """Start the next pass at batch ``batch`` (0-based) of the current epoch; later passes start at 0."""
        if not 0 <= batch <= len(self):
            raise ValueError(f"cannot resume at batch {batch} of an epoch of {len(self)} batches")
        self._start = batch

    def __iter__(self) -> Iterator[list[SampleKey]]:
        # read when the pass starts (DataLoader may create a sampler iterator and discard it unread)
        start, self._start = self._start, 0
        epoch, size = self.epoch, self.current_size()
        batch: list[SampleKey] = []
        for index in itertools.islice(self.sampler, start * self.batch_size, None):
            batch.append(SampleKey(index, size, sample_seed(self.seed, epoch, index)))
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch


class RankSplitSampler(Sampler[int]):
    """Evaluation order for one rank: every ``num_replicas``-th index, no shuffling and **no padding**, so
    that a multi-GPU evaluation counts every image exactly once (DistributedSampler repeats a few). With ``key``,
    the rank's indices are served sorted by it (stable): whole-image protocols sort by the size their view makes,
    so that a batch holds one or two sizes rather than as many as images (each size is a forward of its own);
    ``sort_first`` sorts only that many of them, the images a limited test reads, and keeps the rest after them."""

    def __init__(
        self,
        length: int,
        num_replicas: int = 1,
        rank: int = 0,
        key: Optional[Callable[[int], Any]] = None,
        sort_first: Optional[int] = None,
    ) -> None:
        own = range(rank, length, num_replicas)
        if key is None:
            self.indices: Sequence[int] = own
        else:  # sort_first: only the part a limited test reads (the same images as in file order, reordered)
            cut = len(own) if sort_first is None else max(0, min(sort_first, len(own)))
            self.indices = sorted(own[:cut], key=key) + list(own[cut:])

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)
