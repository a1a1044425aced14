"""Decisions that every process of a run takes together, without waiting for a device.

Some decisions start from what one process sees: a scheduler's warning signal, the time since the last
checkpoint, the share of unreadable images in its part of the data. Under DDP every process must act on them at
the same step: a process that writes a checkpoint (a collective) or stops alone leaves the others waiting in a
collective until the process group times out (30 minutes by default).

So processes vote, and only at *decision steps*: the training steps whose metrics Lightning writes to the loggers
(every ``log_every_n_steps``), where the step loss is all-reduced anyway, and at epoch ends. A vote is one
all-reduce of a few integers on a CPU (gloo) group: a host-to-host message, never a copy to or from a GPU, so a
step waits for no kernel. One process votes with itself, at every step, for free.

torch.distributed has the collectives but no notion of "the steps where it is safe to agree"; Lightning's
``strategy.broadcast``/``reduce_boolean_decision`` go through the device's backend (NCCL on a GPU): hence this.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import pytorch_lightning as pl
import torch
import torch.distributed as dist

_GROUPS: dict[int, Any] = {}  # id(default group) -> the gloo group created for it


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def control_group() -> Any:
    """A gloo group over all processes: the default group where it is gloo already, else one created for it.

    Creating a group is itself collective; every caller reaches the first vote at the same point (votes are only
    taken at decision steps, which all processes share), so all processes create it in the same order."""
    world = dist.group.WORLD
    key = id(world)
    if key not in _GROUPS:
        _GROUPS.clear()  # a new default group (a new run in this process): the old one is gone
        _GROUPS[key] = world if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")
    return _GROUPS[key]


def vote_max(values: Sequence[int]) -> list[int]:
    """The element-wise maximum of ``values`` over all processes (this process's own without DDP)."""
    if not _distributed():
        return [int(v) for v in values]
    tensor = torch.tensor([int(v) for v in values], dtype=torch.int64)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX, group=control_group())
    return [int(v) for v in tensor.tolist()]


def gather_objects(obj: Any) -> list[Any]:
    """``obj`` of every process in rank order, over the CPU group (for the rare path after a vote)."""
    if not _distributed():
        return [obj]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj, group=control_group())
    return gathered


def is_decision_step(trainer: pl.Trainer) -> bool:
    """Whether the optimizer step that has just ended is one where processes vote (in ``on_train_batch_end``).

    One process: every step. DDP: the steps whose metrics Lightning logs (``SppClassifier`` all-reduces the step
    loss there), i.e. every ``log_every_n_steps`` optimizer steps; every step in a fast dev run."""
    if trainer.world_size == 1 or trainer.fast_dev_run:  # type: ignore[attr-defined]  # set by Lightning's setup
        return True
    every: Optional[int] = trainer.log_every_n_steps  # type: ignore[attr-defined]  # set by its logger connector
    return every is not None and every != 0 and trainer.global_step % every == 0


def leave_together() -> None:
    """The end of a run under DDP: wait for every process (global rank 0 may still be writing the results),
    then take the process group down in each. A process that exits with its group still up leaves gloo's
    threads to the interpreter's exit, which can abort it ("terminate called without an active exception")
    while another process still talks to it; torch asks for ``destroy_process_group`` before exit anyway."""
    if not _distributed():
        return
    dist.barrier(group=control_group())
    _GROUPS.clear()
    dist.destroy_process_group()
