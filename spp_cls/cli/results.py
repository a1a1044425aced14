"""Small JSON results files that every run writes into its run directory."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from spp_cls.io import write_atomic

METRICS_FILE = "metrics.json"


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_results(run_dir: str | Path, results: Mapping[str, Any]) -> Path:
    """Write ``results`` (tensors become numbers) to ``run_dir/metrics.json`` and return its path."""
    return write_atomic(
        Path(run_dir) / METRICS_FILE,
        json.dumps({k: _plain(v) for k, v in results.items()}, indent=2, sort_keys=True) + "\n",
    )


def protocol_table(results: Mapping[str, Any]) -> str:
    """Markdown table of an evaluation: one row per protocol."""
    lines = [
        "| protocol | views/image | images | top-1 err % | top-5 err % | images/s | views/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results["protocols"].items():
        lines.append(
            f"| {name} | {r['views_per_image']:.1f} | {r['images']} | {100 * r['top1_err']:.2f} | "
            f"{100 * r['top5_err']:.2f} | {r['images_per_s']:.1f} | {r['views_per_s']:.1f} |"
        )
    return "\n".join(lines)


def write_markdown(run_dir: str | Path, checkpoint: str | Path, table: str) -> list[Path]:
    """The table as ``results.md`` in the evaluation's run directory and, beside the checkpoint's training
    run (``<run>/evaluations/<evaluation run>.md``), so a training run collects its evaluations."""
    run_dir = Path(run_dir)
    paths = [run_dir / "results.md"]
    ckpt_run = Path(checkpoint).resolve().parent.parent
    if (ckpt_run / ".hydra").is_dir():
        paths.append(ckpt_run / "evaluations" / f"{run_dir.name}.md")
    text = f"Evaluation of {Path(checkpoint).resolve()} ({run_dir})\n\n{table}\n"
    return [write_atomic(path, text) for path in paths]


def save_scores(run_dir: str | Path, protocol: str, kept: list[tuple[torch.Tensor, ...]], rank: int) -> Path:
    """Per-image softmax scores and targets of one protocol (this process's images) as ``.npz`` (no pickles),
    in the order they were tested, with ``indices`` (each image's position in the split's file list) when the
    data are class folders: whole-image protocols test images ordered by size, not by file."""
    path = Path(run_dir) / f"scores_{protocol}_rank{rank}.npz"
    scores = torch.cat([k[0] for k in kept]).float().numpy() if kept else np.zeros((0, 0), np.float32)
    targets = torch.cat([k[1] for k in kept]).numpy() if kept else np.zeros(0, np.int64)
    arrays: dict[str, Any] = {"scores": scores, "targets": targets}
    if kept and all(len(k) > 2 for k in kept):
        arrays["indices"] = torch.cat([k[2] for k in kept]).numpy()
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return write_atomic(path, buffer.getbuffer())
