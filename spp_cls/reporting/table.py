"""Collect the metrics.json files that evaluate.py writes and set them side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from spp_cls.cli.results import METRICS_FILE


def collect_results(root: str | Path) -> list[dict[str, Any]]:
    """Every evaluation result below ``root`` (a metrics.json of evaluate.py), one row per protocol, in path
    order."""
    rows = []
    for path in sorted(Path(root).rglob(METRICS_FILE)):
        result = json.loads(path.read_text())
        if "protocols" in result:
            for name, metrics in result["protocols"].items():
                rows.append(dict(result, **metrics, protocol=name, path=str(path)))
        elif "protocol" in result:
            rows.append(dict(result, path=str(path)))
    return rows


def _pyramid(row: dict[str, Any]) -> str:
    levels = row.get("pyramid")
    return "-" if not levels else "{" + ",".join(str(n) for n in levels) + "}"


def _aligned(lines: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    return text


def _chance(rows: list[dict[str, Any]]) -> list[str]:
    classes = {row.get("num_classes") for row in rows}
    if len(classes) == 1 and None not in classes:
        (k,) = classes
        assert k is not None
        return [f"(chance level with {k} classes: top-1 error {100 * (1 - 1 / k):.2f}%)"]
    return []


def format_columns(rows: list[dict[str, Any]]) -> str:
    """One line per evaluated model (metrics.json), one ``top-1 / top-5`` column per protocol."""
    protocols = list(dict.fromkeys(row["protocol"] for row in rows))
    evaluations: dict[str, dict[str, Any]] = {}
    for row in rows:
        evaluations.setdefault(row["path"], {"row": row})[row["protocol"]] = row
    lines = [("model", "SPP levels", "images", *(f"{p} top-1/top-5 %" for p in protocols))]
    for entry in evaluations.values():
        first = entry["row"]
        cells = [
            f"{100 * entry[p]['top1_err']:.2f} / {100 * entry[p]['top5_err']:.2f}" if p in entry else "-"
            for p in protocols
        ]
        lines.append((first["model"], _pyramid(first), str(first["images"]), *cells))
    return "\n".join(_aligned(lines) + _chance(rows))


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of top-1/top-5 error in percent, one row per evaluated checkpoint."""
    header = ("model", "SPP levels", "protocol", "images", "top-1 err %", "top-5 err %")
    lines: list[tuple[str, ...]] = [header]
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
    return "\n".join(_aligned(lines) + _chance(rows))
