"""Where a fit stands, in the terms a resumed run needs: the epoch and how many of its training batches are done."""

from __future__ import annotations

import pytorch_lightning as pl


def training_position(trainer: pl.Trainer) -> tuple[int, int]:
    """``(epoch, batches)``: a checkpoint taken now must resume at batch ``batches`` (0-based) of ``epoch``.

    Between epochs (in ``on_train_epoch_start`` or after the last epoch) that is ``(next epoch, 0)``; inside
    an epoch (``on_train_batch_end``) it is the number of batches already trained on. Read from Lightning's
    loop counters, which a resumed run restores, so the number is the same in the run that saved and in the
    run that resumes.
    """
    # Lightning types the counters as _ReadyCompletedTracker; these loops' are _ProcessedTrackers (started, processed)
    loop = trainer.fit_loop
    epoch = loop.epoch_progress.current.processed  # type: ignore[attr-defined]
    inside_epoch = loop.epoch_progress.current.started > epoch  # type: ignore[attr-defined]
    return epoch, loop.epoch_loop.batch_progress.current.processed if inside_epoch else 0  # type: ignore[attr-defined]
