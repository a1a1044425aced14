"""Multi-size schedule and batch sampler: alternation, the random variant, agreement, resume continuity."""

from __future__ import annotations

import pytest

from spp_cls.data.sampling import RankSplitSampler, ScheduledBatchSampler, input_size_for_epoch, sample_seed


def test_alternate_and_random_schedules() -> None:
    assert [input_size_for_epoch([224, 180], "alternate", 0, e) for e in range(5)] == [224, 180, 224, 180, 224]
    assert [input_size_for_epoch([224], "alternate", 3, e) for e in range(3)] == [224, 224, 224]
    drawn = [input_size_for_epoch([224, 180], "random", 0, e) for e in range(400)]
    assert min(drawn) == 180 and max(drawn) == 224 and len(set(drawn)) == 45  # every size in [180, 224]
    assert drawn == [input_size_for_epoch([180, 224], "random", 0, e) for e in range(400)]  # order-free
    assert drawn != [input_size_for_epoch([224, 180], "random", 1, e) for e in range(400)]  # seed matters
    with pytest.raises(ValueError, match="size_schedule"):
        input_size_for_epoch([224], "cyclic", 0, 0)


def _epoch(sampler: ScheduledBatchSampler, epoch: int) -> list:
    sampler.set_epoch(epoch)
    return list(sampler)


def test_batches_have_one_size_and_ranks_split_the_data() -> None:
    data = list(range(50))
    ranks = [ScheduledBatchSampler(data, 4, [224, 180], "alternate", seed=5, num_replicas=2, rank=r) for r in (0, 1)]
    for epoch, size in ((0, 224), (1, 180), (2, 224)):
        batches = [_epoch(s, epoch) for s in ranks]
        assert len(batches[0]) == len(batches[1]) == len(ranks[0]) == 6  # 25 per rank, drop_last
        assert all(key.size == size for rank in batches for batch in rank for key in batch)
        seen = [key.index for rank in batches for batch in rank for key in batch]
        assert len(seen) == len(set(seen)) == 48  # disjoint, nothing padded in twice here
    assert [k.index for b in _epoch(ranks[0], 0) for k in b] != [k.index for b in _epoch(ranks[0], 1) for k in b]


def test_resume_continues_the_schedule_exactly() -> None:
    """A fresh sampler told the epoch (as after a restart) yields the same batches, sizes and seeds."""
    data = list(range(30))
    uninterrupted = ScheduledBatchSampler(data, 5, [224, 180], "random", seed=9)
    history = [_epoch(uninterrupted, e) for e in range(4)]
    restarted = ScheduledBatchSampler(data, 5, [224, 180], "random", seed=9)
    assert _epoch(restarted, 3) == history[3]
    assert history[3][0][0].seed == sample_seed(9, 3, history[3][0][0].index)


def test_eval_sampler_never_pads() -> None:
    parts = [list(RankSplitSampler(10, 3, r)) for r in range(3)]
    assert sorted(i for p in parts for i in p) == list(range(10)) and [len(p) for p in parts] == [4, 3, 3]


def test_eval_sampler_sorts_each_ranks_share_by_its_key() -> None:
    sizes = [5, 1, 4, 1, 3, 2, 5, 0, 2, 4]
    parts = [list(RankSplitSampler(10, 2, r, key=sizes.__getitem__)) for r in range(2)]
    assert parts == [[8, 4, 2, 0, 6], [7, 1, 3, 5, 9]]  # each rank's share by size, ties in file order
    assert sorted(i for p in parts for i in p) == list(range(10))
    limited = list(RankSplitSampler(10, 2, 0, key=sizes.__getitem__, sort_first=3))
    assert limited == [4, 2, 0, 6, 8]  # a test limited to 3 images reads 0, 2, 4 as in file order, by size


def test_resume_at_starts_one_pass_mid_epoch() -> None:
    """A run resumed after batch k of an epoch continues with exactly the batches k, k+1, ... of that epoch."""
    sampler = ScheduledBatchSampler(list(range(40)), 4, [224, 180], "alternate", seed=2, num_replicas=2, rank=1)
    full = _epoch(sampler, 3)
    sampler.resume_at(2)
    assert _epoch(sampler, 3) == full[2:]
    assert _epoch(sampler, 3) == full  # only the next pass is shortened
    sampler.resume_at(len(sampler))
    assert _epoch(sampler, 3) == []
    with pytest.raises(ValueError, match="cannot resume at batch 6 of an epoch of 5"):
        sampler.resume_at(6)
