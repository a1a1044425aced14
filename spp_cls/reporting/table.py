"""Collect the metrics.json files that evaluate.py writes and set them side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from spp_cls.cli.results import METRICS_FILE


def collect_results(root: str | Path) -> list[dict[str, Any]]:
    """Every evaluation result (a metrics.json with a ``protocol``) below ``root``, in path order."""
    rows = []
    for path in sorted(Path(root).rglob(METRICS_FILE)):
        result = json.loads(path.read_text())
        if "protocol" in result:
            rows.append(dict(result, path=str(path)))
    return rows


def _pyramid(row: dict[str, Any]) -> str:
    levels = row.get("pyramid")
    return "-" if not levels else "{" + ",".join(str(n) for n in levels) + "}"


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of top-1/top-5 error in percent, one row per evaluated checkpoint."""
    header = ("model", "SPP levels", "protocol", "images", "top-1 err %", "top-5 err %")
    lines = [header]
    for row in rows:
        lines.append(
            (
                row["model"],
                _pyramid(row),
                row["protocol"],
                str(row["images"]),
                f"{100 * row['top1_err']:.2f}",
                f"{100 * row['top5_err']:.2f}",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    classes = {row.get("num_classes") for row in rows}
    if len(classes) == 1 and None not in classes:
        (k,) = classes
        text.append(f"(chance level with {k} classes: top-1 error {100 * (1 - 1 / k):.2f}%)")
    return "\n".join(text)
