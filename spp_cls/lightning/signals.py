"""Signals acted on at a safe point of training instead of wherever they happen to arrive.

Cluster schedulers warn a job before stopping it: Slurm sends the signal of ``--signal`` (submitit asks for
USR2, Lightning's own requeue listens on USR1) and then SIGTERM. The handlers installed for them (submitit's
requeue, Lightning's requeue with its ``hpc_ckpt``, Lightning's SIGTERM notice) would run in the middle of a
training step. ``DeferredSignals`` replaces each installed handler with one that only records the signal; the
training loop calls ``forward`` at the next batch boundary, after it has written a checkpoint there. After the
fit, ``requeue_without_checkpoint`` keeps Lightning's requeue from writing a checkpoint of the evaluation.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional, Sequence

import pytorch_lightning as pl
from lightning_fabric.plugins.environments import SLURMEnvironment

Handler = Callable[[int, Any], Any]
log = logging.getLogger(__name__)


class DeferredSignals:
    """Record ``signums`` that have a Python handler installed; hand them to that handler on ``forward``."""

    def __init__(self, signums: Sequence[int]) -> None:
        self.signums = tuple(signums)
        self._originals: dict[int, Handler] = {}
        self._pending: list[int] = []

    def install(self) -> None:
        """Wrap the handlers installed now (signals left to the default action or ignored stay as they are)."""
        for signum in self.signums:
            handler = signal.getsignal(signum)
            if callable(handler) and handler != self._record:
                self._originals[signum] = handler
                signal.signal(signum, self._record)

    def uninstall(self) -> None:
        """Put the wrapped handlers back (unless something else has replaced ours since)."""
        for signum, handler in self._originals.items():
            if signal.getsignal(signum) == self._record:
                signal.signal(signum, handler)
        self._originals = {}

    def _record(self, signum: int, frame: Any) -> None:
        if signum not in self._pending:
            self._pending.append(signum)

    def pending(self) -> int:
        """The first signal received and not yet forwarded (0 if none)."""
        return self._pending[0] if self._pending else 0

    def forward(self, signum: int) -> None:
        """Run the handler that ``signum`` had before ``install`` (it may requeue the job and exit)."""
        if signum in self._pending:
            self._pending.remove(signum)
        handler: Optional[Handler] = self._originals.get(signum)
        if handler is not None:
            handler(signum, None)


def requeue_slurm_job() -> int:
    """``scontrol requeue`` this Slurm job (an array task by its array job and task ids); scontrol's exit status
    (127 when scontrol cannot be run). Never raises: it runs in a signal handler, in the middle of an evaluation."""
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{array_job}_{os.environ.get('SLURM_ARRAY_TASK_ID')}" if array_job else os.environ.get("SLURM_JOB_ID")
    if not job:
        log.warning("requeue asked for outside a Slurm job (no SLURM_JOB_ID)")
        return 127
    try:
        status = subprocess.call(["scontrol", "requeue", job])
    except FileNotFoundError:  # as Lightning does: scontrol may be found by a shell only (a login profile's PATH)
        status = subprocess.call(f"scontrol requeue {job}", shell=True)
    except OSError as err:
        log.warning("scontrol requeue %s could not run: %s", job, err)
        return 127
    if status == 0:
        log.info("requeued Slurm job %s", job)
    else:
        log.warning("scontrol requeue %s failed with status %d", job, status)
    return status


@contextmanager
def requeue_without_checkpoint(trainer: pl.Trainer) -> Iterator[None]:
    """Lightning's Slurm requeue, minus its checkpoint, for what a run does after its fit.

    On the requeue signal Lightning writes ``hpc_ckpt_<n>.ckpt`` from whatever the trainer holds, then requeues.
    After the fit that is a module being validated or tested (with a checkpoint's, possibly averaged, weights,
    without the training state), and ``ckpt_path=auto`` would rank it above ``last.ckpt`` (it records the finished
    epoch count). The fit's ``last.ckpt`` is complete: a requeued job resumes from it, finds the fit done and
    validates and tests again. So here the signal only requeues (rank 0); Lightning leaves a handler it finds
    installed in place. Does nothing unless Lightning's own Slurm requeue is on (a plain sbatch job).
    """
    environment = trainer._accelerator_connector.cluster_environment  # Lightning keeps no public handle on it
    if not isinstance(environment, SLURMEnvironment) or not environment.auto_requeue:
        yield
        return
    signum = environment.requeue_signal or signal.SIGUSR1

    def requeue(received: int, frame: Any) -> None:
        log.info("signal %d after the fit: requeueing without a checkpoint (the job resumes from last.ckpt)", received)
        if trainer.is_global_zero:
            requeue_slurm_job()

    previous = signal.signal(signum, requeue)
    try:
        yield
    finally:
        signal.signal(signum, previous)
