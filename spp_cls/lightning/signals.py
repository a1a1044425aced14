"""Signals acted on at a safe point of training instead of wherever they happen to arrive.

Cluster schedulers warn a job before stopping it: Slurm sends the signal of ``--signal`` (submitit asks for
USR2, Lightning's own requeue listens on USR1) and then SIGTERM. The handlers installed for them (submitit's
requeue, Lightning's requeue with its ``hpc_ckpt``, Lightning's SIGTERM notice) would run in the middle of a
training step. ``DeferredSignals`` replaces each installed handler with one that only records the signal; the
training loop calls ``forward`` at the next batch boundary, after it has written a checkpoint there.
"""

from __future__ import annotations

import signal
from typing import Any, Callable, Optional, Sequence

Handler = Callable[[int, Any], Any]


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
