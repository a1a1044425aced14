"""Number and table formatting shared by the report's markdown (one style for every table)."""

from __future__ import annotations

from typing import Container, Optional, Sequence

from spp_cls.reporting.groups import Stat

NONE = "–"


def number(value: Optional[float], signed: bool = False) -> str:
    """``35.12``; ``+0.52`` with ``signed``; a dash for no value."""
    if value is None:
        return NONE
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def stat_text(s: Stat, signed: bool = False) -> str:
    """``35.12 ± 0.20 (3)``: mean ± sample std (n); ``35.12 (1)`` for one value; a dash for none."""
    if s.n == 0 or s.mean is None:
        return NONE
    spread = f" ± {s.std:.2f}" if s.std is not None else ""
    return f"{number(s.mean, signed)}{spread} ({s.n})"


def difference(ours: Optional[float], paper: Optional[float]) -> Optional[float]:
    return None if ours is None or paper is None else ours - paper


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Optional[Container[int]] = None) -> str:
    """A markdown table; the columns in ``right`` (default: all but the first) are right-aligned (numbers)."""

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    right = range(1, len(header)) if right is None else right
    align = "|" + "|".join("---:" if i in right else "---" for i in range(len(header))) + "|"
    return "\n".join([line(header), align, *(line(row) for row in rows)])
