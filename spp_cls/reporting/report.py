"""The experiments report: the runs below some folders, their seed groups in the paper's table layouts (Tables
2, 3, 4 and the pyramid / random-size numbers) with the paper's numbers and the differences beside them, the
paired SPP gains per seed, and figures of the validation error per epoch; as report.md, report.csv and PNGs.

Every set of tables is made per context (see :func:`spp_cls.reporting.groups.group_runs`) and says which
metric source it used.
"""

from __future__ import annotations

import csv
import io
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from spp_cls.config.schema import paper_epochs
from spp_cls.reporting import paper
from spp_cls.checkpointing import write_atomic
from spp_cls.reporting.curves import Curve, val_curve
from spp_cls.reporting.figures import Series, error_curves_png
from spp_cls.reporting.groups import (ALWAYS_CONTEXT, ContextKey, Group, SeedDifference, Stat, choose_source,
                                      context_text, difference_stats, differences, group_runs, paired_gains,
                                      pyramid_text, result_sets)
from spp_cls.reporting.runs import ARMS, DONE, Discovery, discover
from spp_cls.reporting.text import NONE, difference, md_table, number, stat_text

SOURCE_TEXT: dict[str, str] = {
    "ten_view": "evaluate.py `ten_view`: 10 views (the center and 4 corner crops, each mirrored), the paper's "
                "Table 2 protocol",
    "center": "evaluate.py `center`: one center crop (the paper's Table 3 \"1 crop\")",
    "full": "evaluate.py `full`: the whole image as one view (the paper's Table 3 \"1 full\")",
    "full_flip": "evaluate.py `full_flip`: the whole image and its mirror",
    "multiview_18": "evaluate.py `multiview_18`: 18 views on the feature maps of one scale",
    "multiview_96": "evaluate.py `multiview_96`: 96 views on the feature maps at 6 scales",
    "multiview": "evaluate.py `multiview`: 96 views on the feature maps at 6 scales + 2 full-image views (the paper's "
                 "Table 4)",
    "val": "the training runs' own final validation (`val/*` in their metrics.json: the best checkpoint on the "
           "training-time validation view)",
}
EVALUATE_HINT = ("python evaluate.py ckpt_path=<run>/checkpoints/best.ckpt protocols=[center,ten_view,full,multiview], "
                 "or train with evaluate_protocols=[...]")
NOT_DONE_MARK = "†"
#: the multi-view protocols of Table 4, fewest views first
MULTIVIEW = ("multiview_18", "multiview_96", "multiview")
REPORT_MD, REPORT_CSV = "report.md", "report.csv"
CSV_COLUMNS = ("context", "data", "arch", "network", "arm", "pyramid", "source", "n", "runs", "not_done", "seeds",
               "top1_mean", "top1_std", "top5_mean", "top5_std", "paper_top1", "paper_top5", "diff_top1", "diff_top5",
               "gain_top1_mean", "gain_top1_std", "gain_top5_mean", "gain_top5_std", "gain_n", "paper_gain_top1",
               "paper_gain_top5")


def network_name(arch: str) -> str:
    return paper.NETWORKS.get(arch, arch)


@dataclass
class ResultSet:
    """The groups of one context (one set of tables) and the metric source their tables use."""

    context: ContextKey
    groups: list[Group]
    source: str
    requested: Optional[str]

    def seeds_with(self, source: str) -> tuple[int, int]:
        """(seeds that have ``source``, seeds with a done run) over the groups."""
        return sum(len(g.errors(source)) for g in self.groups), sum(len(g.counted) for g in self.groups)

    @property
    def archs(self) -> list[str]:
        return list(dict.fromkeys(g.arch for g in self.groups))

    @property
    def imagenet(self) -> bool:
        return all(g.data_name in paper.IMAGENET_DATA for g in self.groups)

    def find(self, arch: str, arm: str, pyramid: Optional[tuple[int, ...]] = paper.PAPER_PYRAMID) -> Optional[Group]:
        """The group of a network and arm (the paper's pyramid unless told; none for no SPP)."""
        for group in self.groups:
            if group.arch == arch and group.arm == arm and (arm == "no_spp" or group.pyramid == pyramid):
                return group
        return None

    def in_table2(self, group: Group) -> bool:
        return group.arm in paper.TABLE2_ROWS and group.pyramid in (None, paper.PAPER_PYRAMID)


def make_result_sets(groups: Sequence[Group], requested: Optional[str]) -> list[ResultSet]:
    """Groups of one context together, each set with its metric source."""
    found = [ResultSet(key, members, "", requested) for key, members in result_sets(groups)]
    for result_set in found:
        result_set.source = choose_source(result_set.groups, requested)
    return found


def _marked(group: Optional[Group], s: Stat) -> str:
    """A statistic, marked when its group also has runs that are not done."""
    unfinished = group is not None and any(r.status != DONE for r in group.runs)
    return stat_text(s) + (NOT_DONE_MARK if unfinished else "")


def _beside(group: Optional[Group], ours: Stat, theirs: Optional[float]) -> list[str]:
    """Ours, the paper's and ours − paper."""
    return [_marked(group, ours), number(theirs), number(difference(ours.mean, theirs), signed=True)]


def _per_seed(found: Sequence[SeedDifference], top5: bool = False) -> str:
    values = [(d.seed, d.top5 if top5 else d.top1) for d in found]
    return ", ".join(f"{seed}: {number(v, signed=True)}" for seed, v in values if v is not None) or NONE


def _paper_gain(arch: str, arm: str, pyramid: Optional[tuple[int, ...]]) -> tuple[Optional[float], Optional[float]]:
    """The paper's no-SPP − SPP error (top-1, top-5), where it has both numbers."""
    base, spp = paper.paper_error(arch, "no_spp", None), paper.paper_error(arch, arm, pyramid)
    if base is None or spp is None:
        return None, None
    return difference(base.top1, spp.top1), difference(base.top5, spp.top5)


def _metric_line(ctx: ResultSet) -> str:
    """Which metric source the tables use, and why (the default falls back when an evaluation is missing)."""
    have, seeds = ctx.seeds_with(ctx.source)
    line = f"**Metric: `{ctx.source}`**{' (--protocol)' if ctx.requested else ''} — "
    line += f"{SOURCE_TEXT.get(ctx.source, ctx.source)}; {have} of {seeds} (group, seed) samples have it"
    if ctx.requested and have < seeds:
        line += "; the others are left out of the numbers"
    elif not ctx.requested and ctx.source != "ten_view" and seeds:
        missing = [f"`{p}` is missing for {seeds - ctx.seeds_with(p)[0]}" for p in ("ten_view", "center")
                   if p != ctx.source]
        line += f" ({', '.join(missing)}: the default takes the first source every sample has: ten_view, center, val)"
    if ctx.source != "ten_view":
        line += ". The paper's numbers in Table 2 and the extra lines are 10-view"
    return line + "."


def _setting_notes(ctx: ResultSet) -> list[str]:
    """Where the runs depart from the paper's setting, so that the paper's numbers are read with care."""
    notes = []

    def differing(key: str, expected: Any, text: str) -> None:
        values = sorted({str(v) for g in ctx.groups if (v := g.config.get(key)) is not None and v != expected})
        if values:
            notes.append(f"{text} {'/'.join(values)} (paper {expected})")

    differing("data.crop_size", paper.PAPER_CROP, "crop")
    differing("model.width", 1.0, "width")
    differing("model.fc_dim", paper.PAPER_FC_DIM, "fc6/fc7")
    epochs = sorted({f"{network_name(g.arch)} {g.config.get('trainer.max_epochs')} (paper {paper_epochs(g.arch)})"
                     for g in ctx.groups if g.arch in paper.NETWORKS
                     and g.config.get("trainer.max_epochs") != paper_epochs(g.arch)})
    if epochs:
        notes.append("epochs " + ", ".join(epochs))
    for arm, expected in (("multi", list(paper.PAPER_MULTI_SIZES)), ("random", list(paper.PAPER_RANDOM_RANGE))):
        sizes = sorted({str(g.config.get("data.train_sizes")) for g in ctx.groups if g.arm == arm
                        and sorted(map(str, g.config.get("data.train_sizes") or [])) != sorted(map(str, expected))})
        if sizes:
            notes.append(f"{ARMS[arm]} sizes {'/'.join(sizes)} (paper {expected})")
    return notes


def _table2(ctx: ResultSet) -> list[str]:
    """The paper's Table 2 layout (rows: arms a-c, columns: networks), top-1 and top-5, the paper beside ours."""
    archs = [a for a in ctx.archs if any(ctx.in_table2(g) and g.arch == a for g in ctx.groups)]
    arms = [arm for arm in paper.TABLE2_ROWS if any(ctx.in_table2(g) and g.arm == arm for g in ctx.groups)]
    if not archs:
        return []
    out = []
    for index, name in ((0, "top-1"), (1, "top-5")):
        header = [f"{name} error %"] + [c for a in archs for c in (f"{network_name(a)} ours", "paper", "Δ")]
        rows = []
        for arm in arms:
            row = [f"{paper.TABLE2_ROWS[arm]} {ARMS[arm]}"]
            for arch in archs:
                group = ctx.find(arch, arm)
                ours = group.stats(ctx.source)[index] if group else Stat(None, None, 0)
                theirs = paper.TABLE2.get((arm, arch))
                row += _beside(group, ours, None if theirs is None else (theirs.top1, theirs.top5)[index])
            rows.append(row)
        out += [f"**Table 2, {name} error (%)** — Δ = ours − paper", "", md_table(header, rows), ""]
    return out


def _gains(ctx: ResultSet) -> list[str]:
    """The SPP gain paired by seed: seed noise cancels in it, so it is the fairer test of the paper's claim."""
    rows = []
    for group in ctx.groups:
        baseline = ctx.find(group.arch, "no_spp")
        if group.arm == "no_spp" or baseline is None:
            continue
        found = paired_gains(baseline, group, ctx.source)
        top1, top5 = difference_stats(found)
        paper1, paper5 = _paper_gain(group.arch, group.arm, group.pyramid)
        rows.append([network_name(group.arch), group.label, _per_seed(found), stat_text(top1, True),
                     number(paper1, True), _per_seed(found, top5=True), stat_text(top5, True), number(paper5, True)])
    if not rows:
        return []
    header = ["network", "SPP arm", "top-1 gain per seed", "top-1 gain", "paper", "top-5 gain per seed", "top-5 gain",
              "paper"]
    return ["**SPP vs no SPP, paired by seed** — gain = no-SPP error − SPP error of the same seed (positive: SPP "
            "better; the paper's brackets), mean ± std (n pairs)", "",
            md_table(header, rows, right=range(2, len(header))), ""]


def _extras(ctx: ResultSet) -> list[str]:
    """Groups outside Table 2 (other pyramids, random-size training), with the numbers the paper gives in text."""
    rows = []
    for group in ctx.groups:
        if ctx.in_table2(group):
            continue
        top1, top5 = group.stats(ctx.source)
        theirs = paper.paper_error(group.arch, group.arm, group.pyramid)
        rows.append([network_name(group.arch), ARMS.get(group.arm, group.arm), pyramid_text(group.pyramid),
                     *_beside(group, top1, theirs and theirs.top1), *_beside(group, top5, theirs and theirs.top5)])
    if not rows:
        return []
    header = ["network", "arm", "pyramid", "top-1 ours", "paper", "Δ", "top-5 ours", "paper", "Δ"]
    return ["**Pyramid and random-size training** (paper: ZF-5 30-bin pyramid {4,3,2,1}; Overfeat-7 random size in "
            "[180, 224]) — Δ = ours − paper", "", md_table(header, rows, right=range(3, len(header))), ""]


def _table3(ctx: ResultSet) -> list[str]:
    """Table 3: one center crop vs the full image, for SPP networks (only they take a full image)."""
    rows = []
    for group in ctx.groups:
        crop, full = group.errors("center"), group.errors("full")
        if group.arm == "no_spp" or not (crop or full):
            continue
        crop1 = group.stats("center")[0]
        full1 = group.stats("full")[0]
        theirs = paper.TABLE3.get((group.arm, group.arch)) if group.pyramid == paper.PAPER_PYRAMID else None
        gap = difference_stats(differences(full, crop))[0]
        rows.append([f"{network_name(group.arch)}, {group.label}", *_beside(group, crop1, theirs and theirs[0]),
                     *_beside(group, full1, theirs and theirs[1]), stat_text(gap, True),
                     number(theirs and theirs[1] - theirs[0], True)])
    title = "**Table 3, one view, top-1 error (%)**: 1 crop (`center`) vs 1 full image (`full`), SPP networks"
    if not rows:
        return [title, "", f"No `center` or `full` evaluations of SPP runs here ({EVALUATE_HINT}).", ""]
    header = ["SPP net", "1 crop ours", "paper", "Δ", "1 full ours", "paper", "Δ", "full − crop (paired)", "paper"]
    return [title + " — Δ = ours − paper", "", md_table(header, rows), ""]


def _views(group: Group, protocol: str) -> Optional[float]:
    """Views per image of a protocol's evaluations of the group, where they agree."""
    found = {e["views_per_image"] for r in group.runs if (e := r.evaluation(protocol)) and "views_per_image" in e}
    return found.pop() if len(found) == 1 else None


def _table4(ctx: ResultSet) -> list[str]:
    """Table 4: 10-view vs multi-view testing, for the best SPP group that has multi-view evaluations; the gain
    over 10-view is paired by seed."""
    title = "**Table 4, multi-view testing of the best network**"
    candidates = [g for g in ctx.groups if g.arm != "no_spp" and any(g.errors(p) for p in MULTIVIEW)]
    if not candidates:
        return [title, "", f"No multi-view evaluations ({', '.join(f'`{p}`' for p in MULTIVIEW)}) of SPP runs here "
                f"({EVALUATE_HINT}).", ""]

    def rank(group: Group) -> tuple[int, float]:
        means = [group.stats(p)[0].mean for p in ("ten_view", *MULTIVIEW)]
        return next((i > 0, m) for i, m in enumerate(means) if m is not None)

    best = min(candidates, key=rank)
    rows = []
    for protocol in ("ten_view", *MULTIVIEW):
        if not best.errors(protocol):
            continue
        views = 10.0 if protocol == "ten_view" else _views(best, protocol)
        theirs = paper.TABLE4_TEN_VIEW if protocol == "ten_view" else paper.TABLE4_MULTIVIEW.get(round(views or 0))
        top1, top5 = best.stats(protocol)
        row = [f"{views:g} (`{protocol}`)" if views else f"`{protocol}`", *_beside(best, top1, theirs and theirs.top1),
               *_beside(best, top5, theirs and theirs.top5)]
        if protocol == "ten_view":
            row += [NONE] * 4
        else:
            gain1, gain5 = difference_stats(differences(best.errors("ten_view"), best.errors(protocol)))
            ten = paper.TABLE4_TEN_VIEW
            row += [stat_text(gain1, True), number(difference(ten.top1, theirs and theirs.top1), True),
                    stat_text(gain5, True), number(difference(ten.top5, theirs and theirs.top5), True)]
        rows.append(row)
    note = (f"Best network here: {network_name(best.arch)} {best.label} (lowest 10-view top-1 among SPP groups with "
            "multi-view evaluations)")
    arm, arch = paper.TABLE4_NETWORK
    if (best.arm, best.arch, best.pyramid) != (arm, arch, paper.PAPER_PYRAMID):
        note += f"; the paper's rows are {network_name(arch)} {ARMS[arm]}"
    header = ["test views", "top-1 ours", "paper", "Δ", "top-5 ours", "paper", "Δ", "top-1 gain over 10-view",
              "paper", "top-5 gain over 10-view", "paper"]
    return [title + " — Δ = ours − paper; gain = 10-view error − this error, paired by seed", "", note + ".", "",
            md_table(header, rows), ""]


def _figures(ctx: ResultSet, index: int, total: int, curves: dict[Path, Curve], figures: dict[str, bytes]) -> list[str]:
    """A figure per network of the set (added to ``figures``) and the markdown that embeds them."""
    out = []
    for arch in ctx.archs:
        series = [Series(g.label, g.arm, g.pyramid not in (None, paper.PAPER_PYRAMID),
                         [curves[r.path] for r in g.counted if curves.get(r.path)])
                  for g in ctx.groups if g.arch == arch]
        series = [s for s in series if s.curves]
        if not series:
            continue
        name = f"val_top1_{arch}{f'_set{index}' if total > 1 else ''}.png"
        title = f"{network_name(arch)}: validation top-1 error per epoch"
        figures[name] = error_curves_png(title + (f" (result set {index})" if total > 1 else ""), series)
        out += [f"![{title}]({name})", ""]
    if out:
        out.insert(0, "**Validation top-1 error per epoch** (the training runs' per-epoch validation, whatever the "
                      "metric above; done runs only; line: mean over seeds, band: min–max over seeds)\n")
    return out


def _heading(ctx: ResultSet, index: int, total: int) -> list[str]:
    """The section title (data set, task names) and, where there are several result sets, what sets this one
    apart."""
    data = ", ".join(sorted({g.data_name for g in ctx.groups}))
    tasks = ", ".join(sorted({str(r.get("task_name")) for g in ctx.groups for r in g.runs}))
    out = [f"## Results{f' {index} of {total}' if total > 1 else ''}: data `{data}`, task `{tasks}`", ""]
    apart = [f"`{k}={v}`" for k, v in ctx.context if k not in ALWAYS_CONTEXT]
    if apart:
        out += ["Settings of this result set (where groups of one network and arm differ): " + ", ".join(apart) + ".",
                ""]
    return out


def _context_section(ctx: ResultSet, index: int, total: int, curves: dict[Path, Curve],
                     figures: dict[str, bytes]) -> list[str]:
    out = _heading(ctx, index, total)
    if not ctx.imagenet:
        data = ", ".join(sorted({f"`{g.data_name}`" for g in ctx.groups}))
        out += [f"> **Not ImageNet.** These runs use the data set {data}; the paper's numbers are for ImageNet 2012 "
                "val. They are shown beside ours for orientation only: the differences are not a reproduction "
                "check.", ""]
    notes = _setting_notes(ctx)
    if notes:
        out += ["Setting vs the paper's: " + "; ".join(notes) + ".", ""]
    out += [_metric_line(ctx), ""]
    if any(r.status != DONE for g in ctx.groups for r in g.runs):
        out += [f"{NOT_DONE_MARK}: the group also has runs that are not done (see Runs); n counts done runs only.", ""]
    for part in (_table2, _gains, _extras, _table3, _table4):
        out += part(ctx)
    return out + _figures(ctx, index, total, curves, figures)


def _relative(path: Path, base: Path) -> str:
    text = os.path.relpath(path, base)
    return path.name if text == "." else text


def _runs_section(found: Discovery, groups: Sequence[Group], base: Path, curves: dict[Path, Curve]) -> list[str]:
    """Every run with its status, so a partial sweep shows what is missing and why."""
    repeated = {id(r) for g in groups for r in g.repeated}
    rows = []
    for run in found.runs:
        if run.status == DONE:
            epochs = str(run.epochs_trained)
        else:
            epochs = f"{len(curves.get(run.path, []))}/{run.get('trainer.max_epochs', '?')}"
        val = run.error("val")
        note = run.detail or ("seed also in a newer run: each metric from the newest run that has it"
                              if id(run) in repeated else "")
        rows.append([_relative(run.path, base), network_name(run.arch), ARMS.get(run.arm, run.arm),
                     pyramid_text(run.pyramid), str(run.seed), run.status, epochs,
                     f"{number(val.top1)} / {number(val.top5)}" if val else NONE, ", ".join(run.protocols()) or NONE,
                     note])
    header = ["run", "network", "arm", "pyramid", "seed", "status", "epochs", "val top-1 / top-5 %", "evaluations",
              "note"]
    out = ["## Runs", "", f"Paths relative to `{base}`; epochs of a run that is not done: validated so far / "
           "configured.", "", md_table(header, rows, right={4, 6, 7}), ""]
    if found.unmatched_evaluations:
        out += ["Evaluations not used (ensembles, or of checkpoints outside these folders):", ""]
        out += [f"- `{_relative(p, base)}`" for p in found.unmatched_evaluations] + [""]
    if found.problems:
        out += ["Could not read:", ""] + [f"- {p}" for p in found.problems] + [""]
    return out


def _csv(sets: Sequence[ResultSet]) -> str:
    """report.csv: one row per group and result set, for spreadsheets and plots."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()

    def cell(value: Optional[float]) -> str:
        return "" if value is None else f"{value:.4f}"

    for ctx in sets:
        for group in ctx.groups:
            top1, top5 = group.stats(ctx.source)
            theirs = paper.paper_error(group.arch, group.arm, group.pyramid)
            baseline = ctx.find(group.arch, "no_spp")
            gains = paired_gains(baseline, group, ctx.source) if baseline and group.arm != "no_spp" else []
            gain1, gain5 = difference_stats(gains)
            paper_gain = _paper_gain(group.arch, group.arm, group.pyramid) if group.arm != "no_spp" else (None, None)
            writer.writerow({
                "context": context_text(ctx.context), "data": group.data_name, "arch": group.arch,
                "network": network_name(group.arch), "arm": group.arm, "pyramid": pyramid_text(group.pyramid),
                "source": ctx.source, "n": top1.n, "runs": len(group.runs),
                "not_done": sum(r.status != DONE for r in group.runs),
                "seeds": " ".join(str(s) for s in group.errors(ctx.source)),
                "top1_mean": cell(top1.mean), "top1_std": cell(top1.std), "top5_mean": cell(top5.mean),
                "top5_std": cell(top5.std), "paper_top1": cell(theirs and theirs.top1),
                "paper_top5": cell(theirs and theirs.top5),
                "diff_top1": cell(difference(top1.mean, theirs and theirs.top1)),
                "diff_top5": cell(difference(top5.mean, theirs and theirs.top5)),
                "gain_top1_mean": cell(gain1.mean), "gain_top1_std": cell(gain1.std),
                "gain_top5_mean": cell(gain5.mean), "gain_top5_std": cell(gain5.std),
                "gain_n": gain1.n if gains else "",
                "paper_gain_top1": cell(paper_gain[0]), "paper_gain_top5": cell(paper_gain[1]),
            })
    return buffer.getvalue()


@dataclass
class Report:
    """The rendered report: report.md, report.csv and the figures (file name -> PNG bytes)."""

    markdown: str
    csv: str
    figures: dict[str, bytes]
    runs: int

    def write(self, out: str | Path) -> list[Path]:
        """Write every file into ``out`` (each atomically) and return their paths."""
        out = Path(out)
        paths = [write_atomic(out / name, png) for name, png in self.figures.items()]
        paths.append(write_atomic(out / REPORT_CSV, self.csv))
        paths.append(write_atomic(out / REPORT_MD, self.markdown))
        return paths

    def text(self) -> str:
        """report.md without its image lines, for a terminal."""
        return "\n".join(line for line in self.markdown.splitlines() if not line.startswith("!["))


def build_report(dirs: Sequence[str | Path], protocol: Optional[str] = None) -> Report:
    """The report of every training run below ``dirs``; ``protocol`` forces the metric source of every table
    (default per result set: ten_view if every seed of every group has it, else center, else the training
    validation)."""
    found = discover(dirs)
    groups = group_runs(found.runs)
    sets = make_result_sets(groups, protocol)
    curves = {run.path: val_curve(run) for run in found.runs}
    base = Path(os.path.commonpath([str(Path(d).resolve()) for d in dirs]))
    status = {s: sum(r.status == s for r in found.runs) for s in ("done", "running", "failed")}
    evaluations = sum(len(r.evaluations) for r in found.runs)
    md = ["# SPP-net experiments report", "",
          f"Made {time.strftime('%Y-%m-%d %H:%M')} from " + ", ".join(f"`{d}`" for d in dirs) + ".", "",
          f"**Training runs: {len(found.runs)}** ({status['done']} done, {status['running']} running, "
          f"{status['failed']} failed) in {len(groups)} experiment groups; {evaluations} evaluate.py results matched "
          "to runs. Runs that are not done are listed with their status and left out of every number.", "",
          "Numbers are error rates in %, as mean ± sample standard deviation (n) over the seeds of one experiment "
          "(runs whose configs differ only in `seed`, `task_name` and where they ran); several done runs with one seed "
          "are one sample, each metric from the newest run that has it. "
          "The paper's numbers (He et al., TPAMI 2015, ImageNet 2012 val) stand beside ours.", ""]
    not_done = [r for r in found.runs if r.status != DONE]
    if not_done:
        listed = [f"`{_relative(r.path, base)}` {r.status}" + (f" ({r.detail})" if r.detail else "") for r in not_done]
        md += ["Not done: " + "; ".join(listed) + ".", ""]
    figures: dict[str, bytes] = {}
    for index, ctx in enumerate(sets, 1):
        md += _context_section(ctx, index, len(sets), curves, figures)
    md += _runs_section(found, groups, base, curves)
    return Report("\n".join(md).rstrip() + "\n", _csv(sets), figures, len(found.runs))
