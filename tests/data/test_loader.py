"""Loaders that follow the trainer: epoch on iteration, Lightning's stateful-loader interface for mid-epoch resume,
and iterator creation that leaves the global random stream alone."""

from __future__ import annotations

import pytest
import torch

from spp_cls.data.loader import EpochAwareDataLoader, ResumableDataLoader, loader_generator
from spp_cls.data.sampling import SampleKey, ScheduledBatchSampler


class Position:
    """Stands in for the trainer: the epoch and the batches of it done."""

    def __init__(self) -> None:
        self.epoch, self.batches = 0, 0

    def __call__(self) -> tuple[int, int]:
        return self.epoch, self.batches


class Keys:
    """A data set that returns what the batch sampler asks for."""

    def __len__(self) -> int:
        return 24

    def __getitem__(self, key: SampleKey) -> SampleKey:
        return key


def keep(batch: list[SampleKey]) -> list[SampleKey]:
    return batch


def indices(loader: ResumableDataLoader) -> list[list[int]]:
    return [[key.index for key in batch] for batch in loader]


def make(position: Position, workers: int = 0) -> ResumableDataLoader:
    sampler = ScheduledBatchSampler(Keys(), 4, [64], "alternate", seed=1)
    return ResumableDataLoader(
        Keys(),
        batch_sampler=sampler,
        collate_fn=keep,
        num_workers=workers,
        persistent_workers=workers > 0,
        epoch_fn=lambda: position.epoch,
        position_fn=position,
        generator=loader_generator(7),
    )


@pytest.mark.parametrize("workers", [0, 2])
def test_a_loader_restored_mid_epoch_continues_at_the_next_batch(workers: int) -> None:
    position = Position()
    position.epoch = 2
    full = indices(make(position))
    position.batches = 4  # a checkpoint taken after 4 batches of epoch 2 ...
    state = make(position).state_dict()
    assert state == {"epoch": 2, "batches": 4}

    resumed = make(Position(), workers)  # ... restored into a new process, whose trainer is at epoch 2 again
    resumed.load_state_dict(state)
    resumed.epoch_fn = lambda: 2
    assert indices(resumed) == full[4:]
    assert indices(resumed) == full  # the epoch's next pass (and every later one) is whole


def test_a_state_for_another_epoch_is_not_applied() -> None:
    position = Position()
    loader = make(position)
    loader.load_state_dict({"epoch": 5, "batches": 3})
    assert len(indices(loader)) == 6


def test_creating_iterators_leaves_the_global_generator_alone() -> None:
    """Dropout draws from the global stream; a resumed run creates its loader iterators at other times."""
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    loader = EpochAwareDataLoader(list(range(8)), batch_size=2, generator=loader_generator(3), epoch_fn=lambda: 0)
    for _ in range(3):
        list(loader)
    assert torch.equal(torch.rand(3), expected)
