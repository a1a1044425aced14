"""What ``python -m spp_cls.predict`` writes: one line per image on stdout, skipped files and the totals on
stderr, and with ``--json OUT`` one JSON record per image (JSON Lines, written atomically at the end)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from spp_cls.data.folder import Skipped
from spp_cls.io import write_atomic
from spp_cls.predict.scoring import Prediction


def prediction_line(prediction: Prediction) -> str:
    """``PATH<TAB>name 0.873 | name 0.052 | ...``: the path first, so that the lines sort and cut by it."""
    top = " | ".join(f"{name} {p:.3f}" for name, p in zip(prediction.names, prediction.probabilities))
    return f"{prediction.path}\t{top}"


def skip_line(skipped: Skipped) -> str:
    return f"skipped {skipped.path}: {skipped.reason}"


def skip_record(skipped: Skipped) -> dict[str, Any]:
    """The record of an unreadable file: its path and why, in place of classes and probabilities."""
    return {"path": skipped.path, "error": skipped.reason}


def write_json(path: str | Path, records: list[dict[str, Any]]) -> Path:
    """The records as JSON Lines (one object per line), written atomically."""
    return write_atomic(Path(path), "".join(json.dumps(record) + "\n" for record in records))
