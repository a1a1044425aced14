"""The report's table for timm backbones (``experiment=backbones``): per backbone, its own global pooling
against SPP, each with its spread over seeds, and the SPP gain paired by seed (seed noise cancels in it).

The paper has no numbers for these networks, so the table sets our arms beside each other rather than beside the
paper; it replaces the Table 2-4 layout for result sets of backbone runs.
"""

from __future__ import annotations

from typing import Optional, Sequence

from spp_cls.reporting.groups import Group, difference_stats, paired_gains, pyramid_text
from spp_cls.reporting.text import md_table, stat_text


def is_backbone(group: Group) -> bool:
    """Whether the group's runs are of a timm backbone (``model.backbone`` set)."""
    return bool(group.runs[0].get("model.backbone"))


def head_label(group: Group) -> str:
    """``global pooling`` or ``SPP {3,2,1}``, and ``multi-size`` where the run trained at several sizes."""
    head = f"SPP {pyramid_text(group.pyramid)}" if group.runs[0].spp else "global pooling"
    sizes = group.runs[0].train_sizes
    return head + (" multi-size" if len(set(map(str, sizes))) > 1 else "")


def _baseline(groups: Sequence[Group], backbone: str) -> Optional[Group]:
    """The backbone's global-pooling group trained at one size (the reference of its gains)."""
    for group in groups:
        if group.arch == backbone and not group.runs[0].spp and "multi-size" not in head_label(group):
            return group
    return None


def backbone_table(groups: Sequence[Group], source: str) -> list[str]:
    """Markdown lines of the table (none when no group is a backbone's)."""
    mine = sorted((g for g in groups if is_backbone(g)), key=lambda g: (g.arch, g.runs[0].spp, head_label(g)))
    if not mine:
        return []
    rows = []
    for group in mine:
        top1, top5 = group.stats(source)
        full1 = group.stats("full")[0]
        baseline = _baseline(mine, group.arch)
        gains = paired_gains(baseline, group, source) if baseline is not None and baseline is not group else []
        per_seed = ", ".join(f"{d.seed}: {d.top1:+.2f}" for d in gains)
        rows.append(
            [
                group.arch,
                head_label(group),
                stat_text(top1),
                stat_text(top5),
                stat_text(full1),
                per_seed,
                stat_text(difference_stats(gains)[0], True) if gains else "",
            ]
        )
    header = [
        "backbone",
        "head",
        f"top-1 % ({source})",
        f"top-5 % ({source})",
        "top-1 % (full image)",
        "top-1 gain per seed",
        "top-1 gain",
    ]
    return [
        f"**Global pooling vs SPP per backbone** — error rates mean ± std (n seeds) from `{source}` and the full "
        "image; gain = global-pooling error − this head's error of the same seed (positive: better than the "
        "backbone's own global pooling)",
        "",
        md_table(header, rows, right=range(2, len(header))),
        "",
    ]
