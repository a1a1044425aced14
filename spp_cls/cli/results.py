"""Small JSON results files that every run writes into its run directory."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

import torch

METRICS_FILE = "metrics.json"


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_results(run_dir: str | Path, results: Mapping[str, Any]) -> Path:
    """Write ``results`` (tensors become numbers) to ``run_dir/metrics.json`` and return its path."""
    path = Path(run_dir) / METRICS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({k: _plain(v) for k, v in results.items()}, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path

