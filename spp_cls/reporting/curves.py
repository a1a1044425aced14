"""Validation top-1 error per epoch of a training run, from its CSV log (logger=csv) or its TensorBoard
event files (the default logger), for the report's figures."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Optional

from spp_cls.reporting.runs import Run

VAL_TOP1 = "val/top1_err"
CSV_FILE = Path("csv") / "metrics.csv"
TENSORBOARD_DIR = "tensorboard"

Curve = list[tuple[int, float]]  # (epoch, counted from 1; top-1 error %)


def _number(text: Optional[str]) -> Optional[float]:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def _csv_points(path: Path) -> list[tuple[int, float]]:
    """(epoch from 0, error fraction) for every row of metrics.csv that has a validation top-1 error."""
    points = []
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            epoch, value = _number(row.get("epoch")), _number(row.get(VAL_TOP1))
            if epoch is not None and value is not None:
                points.append((int(epoch), value))
    return points


def _tensorboard_points(folder: Path) -> list[tuple[int, float]]:
    """(epoch from 0, error fraction) for every val/top1_err point of the event files. The epoch is Lightning's
    ``epoch`` scalar at the same step; without one, the order of the validation points."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    values: list[tuple[float, int, float]] = []  # (wall time, step, value)
    epoch_at: dict[int, float] = {}
    for events in sorted(folder.rglob("events.out.tfevents*")):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        tags = accumulator.Tags().get("scalars", [])
        if VAL_TOP1 in tags:
            values += [(e.wall_time, e.step, e.value) for e in accumulator.Scalars(VAL_TOP1)]
        if "epoch" in tags:
            epoch_at.update((e.step, e.value) for e in accumulator.Scalars("epoch"))
    values.sort()
    return [(int(epoch_at.get(step, i)), value) for i, (_, step, value) in enumerate(values)]


def val_curve(run: Run) -> Curve:
    """Validation top-1 error (%) per epoch (1 = the first epoch). The validation of the best checkpoint that
    training runs after the last epoch (logged with the epoch count as its epoch) is left out; where an epoch
    was validated twice (a resumed run), the later value counts."""
    if (run.path / CSV_FILE).is_file():
        points = _csv_points(run.path / CSV_FILE)
    elif (run.path / TENSORBOARD_DIR).is_dir():
        points = _tensorboard_points(run.path / TENSORBOARD_DIR)
    else:
        return []
    limit = run.epochs_trained
    per_epoch: dict[int, float] = {}
    for epoch, value in points:
        if limit is None or epoch < limit:
            per_epoch[epoch] = 100 * value
    return sorted((epoch + 1, value) for epoch, value in per_epoch.items())
