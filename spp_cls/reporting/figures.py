"""Figures of the report: per network, the validation top-1 error per epoch of each way of training it
(no SPP, SPP single-size, multi-size, ...), the mean over seeds as a line and the seed spread (min–max) as a
band, so a reader sees both the SPP gain and whether it exceeds the seed noise.

Drawn with matplotlib's Agg canvas directly (no pyplot): no display needed and no global backend switched for
whoever imports this.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from spp_cls.reporting.curves import Curve

#: colour per arm; a pyramid other than the paper's is drawn dashed
ARM_COLOURS = {"no_spp": "#555555", "single": "#1f77b4", "multi": "#d62728", "random": "#2ca02c"}


@dataclass(frozen=True)
class Series:
    """The curves (one per seed) of one group, drawn as one line and band."""

    label: str
    arm: str
    dashed: bool
    curves: Sequence[Curve]


def spread(curves: Sequence[Curve]) -> tuple[list[int], list[float], list[float], list[float]]:
    """Epochs, and per epoch the mean, min and max over the curves that reached it."""
    by_epoch: dict[int, list[float]] = {}
    for curve in curves:
        for epoch, value in curve:
            by_epoch.setdefault(epoch, []).append(value)
    epochs = sorted(by_epoch)
    return (
        epochs,
        [sum(by_epoch[e]) / len(by_epoch[e]) for e in epochs],
        [min(by_epoch[e]) for e in epochs],
        [max(by_epoch[e]) for e in epochs],
    )


def error_curves_png(title: str, series: Sequence[Series]) -> bytes:
    """A PNG of the series' mean validation top-1 error per epoch with min–max bands."""
    figure = Figure(figsize=(6.4, 4.2), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for item in series:
        epochs, mean, low, high = spread(item.curves)
        if not epochs:
            continue
        colour = ARM_COLOURS.get(item.arm, "#9467bd")
        axes.plot(
            epochs,
            mean,
            color=colour,
            linestyle="--" if item.dashed else "-",
            marker="o",
            markersize=2.5,
            label=f"{item.label} (n={len(item.curves)})",
        )
        axes.fill_between(epochs, low, high, color=colour, alpha=0.18, linewidth=0)
    axes.set_title(title, fontsize=10)
    axes.set_xlabel("epoch")
    axes.set_ylabel("validation top-1 error (%)")
    axes.grid(True, alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=8, title="mean over seeds; band: min–max", title_fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
