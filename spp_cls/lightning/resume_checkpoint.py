"""``checkpoints/last.ckpt``: the newest point from which a run continues exactly as if it had never stopped.

``ResumeCheckpoint`` writes it at every epoch boundary (after validation and the learning-rate schedule of the
epoch), every ``every_minutes`` of training inside an epoch, at the end of training, and at the first batch
boundary after a scheduler's warning signal (then it hands the signal on to the handler that was installed
for it: submitit's or Lightning's requeue, Lightning's SIGTERM notice). Under DDP the processes decide whether
to save (a signal on any process, the time on any process) by a vote on a CPU group at decision steps only (the
logging steps: ``spp_cls.lightning.agreement``), so a signal is acted on within ``log_every_n_steps`` steps and no
step sends a message between processes otherwise. Never in the middle of a step, and
never at an epoch's last batch (its validation and schedule step must come first): the epoch boundary follows
right after it.

Besides what Lightning checkpoints (weights, optimizer, schedulers, loop counters, callbacks, the data module
and the training loader's position: see ``spp_cls.data.loader.ResumableDataLoader``), each file holds, per
rank, the global random generators and the running sums of the epoch (``EpochState``). In the first epoch of a
resumed run Lightning does not step a ``ReduceLROnPlateau`` schedule; this callback does, since that epoch's
validation did run in the resumed process.
"""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path
from typing import Any, Optional, Protocol, Sequence, runtime_checkable

import pytorch_lightning as pl
from pytorch_lightning.utilities.exceptions import SIGTERMException

from spp_cls.io import remove_stale_temporaries
from spp_cls.lightning.agreement import is_decision_step, vote_max
from spp_cls.lightning.position import training_position
from spp_cls.lightning.rank_state import gather_from_ranks, rng_state, set_rng_state
from spp_cls.lightning.signals import DeferredSignals

log = logging.getLogger(__name__)

RANK_STATES = "spp_cls_rank_states"  # checkpoint key: one entry per rank
SIGNALS = ("SIGUSR1", "SIGUSR2", "SIGTERM")
#: ``_target_`` of this callback in conf/callbacks, and the one that configs written before the module was named
#: after it (``spp_cls.lightning.resume``) carry: run folders and requeued jobs still hold those
TARGET = "spp_cls.lightning.resume_checkpoint.ResumeCheckpoint"
FORMER_TARGETS = {"spp_cls.lightning.resume.ResumeCheckpoint": TARGET}


@runtime_checkable
class EpochState(Protocol):
    """A module or data module that accumulates something within an epoch that must survive a mid-epoch resume."""

    def epoch_state(self) -> dict[str, Any]: ...

    def load_epoch_state(self, state: dict[str, Any]) -> None: ...


class ResumeCheckpoint(pl.Callback):
    """Keep ``<dirpath>/<filename>.ckpt`` at the newest exact resume point (see the module docstring).

    Args:
        dirpath: checkpoint folder of the run.
        every_minutes: inside an epoch, write a checkpoint when this much time has passed since the last one
            (None or 0: only at epoch boundaries, the end and on signals).
        signals: names of the signals to act on at the next batch boundary (those with a handler installed).
        filename: file name without ``.ckpt``.
    """

    def __init__(
        self,
        dirpath: str | Path,
        every_minutes: Optional[float] = 30.0,
        signals: Sequence[str] = SIGNALS,
        filename: str = "last",
    ) -> None:
        if every_minutes is not None and every_minutes < 0:
            raise ValueError(f"every_minutes must be >= 0 or null; got {every_minutes}")
        unknown = [name for name in signals if name not in signal.Signals.__members__]
        if unknown:
            raise ValueError(f"unknown signal names {unknown}")
        self.path = Path(dirpath) / f"{filename}.ckpt"
        self.every_s = 60.0 * every_minutes if every_minutes else None
        self.signals = DeferredSignals([signal.Signals[name] for name in signals])
        self._last_save = 0.0
        self._saved_at: Optional[tuple[int, int]] = None
        self._boundary = False
        self._resumed = False
        self._loaded: Optional[list[dict[str, Any]]] = None

    # --------------------------------------------------------------------------------------- when to save
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.is_global_zero:
            for stale in remove_stale_temporaries(self.path):
                log.info("removed %s, left by a process killed while writing the checkpoint", stale)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._resumed:
            self._saved_at = training_position(trainer)  # the point the run resumed from
            epoch, batch = self._saved_at
            log.info("resumed at epoch %d, batch %d (global step %d)", epoch + 1, batch, trainer.global_step)
            self._restore_rank_state(trainer, pl_module)
        self._last_save = time.monotonic()
        self.signals.install()
        if signal.SIGTERM in self.signals.signums and trainer.world_size > 1:
            _replace_sigterm_broadcast(trainer)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch > 0:
            self._save(trainer, boundary=True)
        self._forward_signal(trainer)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        progress = trainer.fit_loop.epoch_loop.batch_progress
        if progress.is_last_batch or progress.current.ready % trainer.accumulate_grad_batches:
            # the epoch boundary saves after validation and the epoch's schedule step; accumulated gradients
            # are not checkpointed, so only batches that end an optimizer step are resume points
            return
        if not is_decision_step(trainer):
            return  # under DDP processes agree only at logging steps: no message between processes per step
        due = self.every_s is not None and time.monotonic() - self._last_save >= self.every_s
        save, signum = vote_max([int(due), self.signals.pending()])
        if save or signum:
            self._save(trainer, boundary=False)
            if signum:
                self._forward(trainer, signum)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loop = trainer.fit_loop
        if loop.restarting and loop.epoch_loop.batch_progress.current.ready == trainer.num_training_batches:
            # Lightning skips plateau schedules in the first epoch after a restart; its validation ran here
            loop.epoch_loop.update_lr_schedulers("epoch", update_plateau_schedulers=True)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._save(trainer, boundary=True)
        self._forward_signal(trainer)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.signals.uninstall()
        vars(trainer.fit_loop.epoch_loop).pop(_SIGTERM_BROADCAST, None)

    def _forward_signal(self, trainer: pl.Trainer) -> None:
        [signum] = vote_max([self.signals.pending()])
        if signum:
            self._forward(trainer, signum)

    def _forward(self, trainer: pl.Trainer, signum: int) -> None:
        epoch, batch = training_position(trainer)
        log.info(
            "%s received: %s holds epoch %d, batch %d (global step %d); handing the signal on",
            signal.Signals(signum).name,
            self.path,
            epoch + 1,
            batch,
            trainer.global_step,
        )
        self.signals.forward(signum)

    def _save(self, trainer: pl.Trainer, boundary: bool) -> None:
        """Write the checkpoint on every rank's call (a collective), unless this point is already saved."""
        if trainer.fast_dev_run or trainer.sanity_checking:  # type: ignore[attr-defined]  # set by Lightning's setup
            return
        position = training_position(trainer)
        if position == self._saved_at:
            return
        for logger in trainer.loggers:  # what was logged before this point is on disk when the file is
            logger.save()
        self._boundary = boundary
        try:
            # the full state; also silences Lightning's default notice
            trainer.save_checkpoint(self.path, weights_only=False)
        finally:
            self._boundary = False
        self._saved_at, self._last_save = position, time.monotonic()

    # ------------------------------------------------------------------------------------ what is saved
    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[RANK_STATES] = gather_from_ranks(trainer, _rank_state(trainer, pl_module))
        current = trainer.fit_loop.epoch_progress.current
        if self._boundary and current.ready > current.started:  # type: ignore[attr-defined]  # see position.py
            # Saved in on_train_epoch_start, where Lightning has already counted the coming epoch as "ready":
            # take that back, so the file describes the boundary it is, and a run resumed from it starts the
            # epoch as a new one (not through Lightning's restart path for an epoch under way).
            progress = checkpoint["loops"]["fit_loop"]["epoch_progress"]
            for counter in ("current", "total"):
                progress[counter]["ready"] -= 1

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self._resumed, self._loaded = True, checkpoint.get(RANK_STATES)

    def _restore_rank_state(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        states, self._loaded = self._loaded, None
        if not states:
            log.warning(
                "the checkpoint holds no random generator states (not written by spp-cls's ResumeCheckpoint): "
                "the run continues, but not as an uninterrupted run would"
            )
            return
        if len(states) != trainer.world_size:
            log.warning(
                "the checkpoint was written by %d processes and this run has %d: random generators and the "
                "epoch's running sums start afresh, so the result will differ from an uninterrupted run",
                len(states),
                trainer.world_size,
            )
            return
        state = states[trainer.global_rank]
        set_rng_state(state["rng"])
        for name, owner in _epoch_state_owners(trainer, pl_module).items():
            if name in state:
                owner.load_epoch_state(state[name])


_SIGTERM_BROADCAST = "_broadcast_sigterm_tensor"  # Lightning 2.6's training loop (pyproject bounds the version)


def _replace_sigterm_broadcast(trainer: pl.Trainer) -> None:
    """Drop Lightning's per-step SIGTERM broadcast for a local check: the same decision without a message.

    Under DDP, Lightning's training loop broadcasts rank 0's SIGTERM flag on the device after every step and reads
    it back: a device round trip per step. Here SIGTERM is deferred, voted on at decision steps and handed to
    Lightning's own handler on every process at the same step, so every process's flag already agrees."""
    loop = trainer.fit_loop.epoch_loop
    if not callable(getattr(loop, _SIGTERM_BROADCAST, None)):
        return

    def raise_if_sigterm() -> None:
        if trainer.received_sigterm:
            raise SIGTERMException()

    setattr(loop, _SIGTERM_BROADCAST, raise_if_sigterm)


def _epoch_state_owners(trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, EpochState]:
    owners = {"module": pl_module, "datamodule": trainer.datamodule}  # type: ignore[attr-defined]  # set by fit/test
    return {name: owner for name, owner in owners.items() if isinstance(owner, EpochState)}


def _rank_state(trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
    state = {name: owner.epoch_state() for name, owner in _epoch_state_owners(trainer, pl_module).items()}
    state["rng"] = rng_state()
    return state
