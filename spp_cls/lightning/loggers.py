"""A CSV log that a resumed run continues instead of starting over.

Lightning's ``CSVLogger`` deletes ``metrics.csv`` when its folder is not empty. ``ContinuingCSVLogger`` with
``purge_step`` (the first step the resumed run logs) keeps the rows logged before that step and drops the
later ones, which the interrupted run logged after its checkpoint and the resumed run logs again. This is
what ``SummaryWriter(purge_step=...)`` does for TensorBoard, which train.py passes to TensorBoard loggers.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import Any, Optional

from lightning_fabric.loggers.logger import rank_zero_experiment
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter


class ContinuingCSVLogger(CSVLogger):
    """``CSVLogger`` that keeps the rows of ``metrics.csv`` before ``purge_step`` (None: a fresh log)."""

    def __init__(self, *args: Any, purge_step: Optional[int] = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.purge_step = purge_step

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is not None or self.purge_step is None:
            return super().experiment
        path = Path(self.log_dir) / ExperimentWriter.NAME_METRICS_FILE
        kept = _rows_before(path, self.purge_step)
        path.unlink(missing_ok=True)
        with warnings.catch_warnings():  # "previous log files will be deleted": the kept rows are written back
            warnings.filterwarnings("ignore", message="Experiment logs directory")
            writer = super().experiment
        if kept:
            writer.metrics = kept
            writer.save()
        return writer


def _rows_before(path: Path, step: int) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: v for k, v in row.items() if v != ""} for row in rows if row.get("step") and int(row["step"]) < step]
