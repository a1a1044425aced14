"""The experiments report: the runs below some folders, their seed groups in the paper's table layouts (Tables
2, 3, 4 and the pyramid / random-size numbers) with the paper's numbers and the differences beside them, the
paired SPP gains per seed, and figures of the validation error per epoch; as report.md, report.csv and PNGs.

Each set of tables starts with where its runs depart from the paper's setting (a table: setting | ours |
paper, from the saved configs and metrics.json) and says which checkpoint its numbers come from: the final
model (``eval_checkpoint=last``), or, with a warning, the best-on-validation one, which is selected on the very
split it reports (runs from before ``eval_checkpoint`` all tested that one).

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
from typing import Any, Iterable, Optional, Sequence

from spp_cls.config.schema import paper_epochs
from spp_cls.io import write_atomic
from spp_cls.reporting import paper
from spp_cls.reporting.backbones import backbone_table, is_backbone
from spp_cls.reporting.curves import Curve, val_curve
from spp_cls.reporting.environment import environment_line
from spp_cls.reporting.figures import Series, error_curves_png
from spp_cls.reporting.groups import (
    ALWAYS_CONTEXT,
    ContextKey,
    Group,
    SeedDifference,
    Stat,
    choose_source,
    context_text,
    difference_stats,
    differences,
    group_runs,
    paired_gains,
    pyramid_text,
    result_sets,
)
from spp_cls.reporting.runs import ARMS, BEST, DONE, LAST, Discovery, Run, discover
from spp_cls.reporting.text import NONE, difference, md_table, number, stat_text

SOURCE_TEXT: dict[str, str] = {
    "ten_view": "evaluate.py `ten_view`: 10 views (the center and 4 corner crops, each mirrored), the paper's "
    "Table 2 protocol",
    "center": 'evaluate.py `center`: one center crop (the paper\'s Table 3 "1 crop")',
    "full": 'evaluate.py `full`: the whole image as one view (the paper\'s Table 3 "1 full")',
    "full_flip": "evaluate.py `full_flip`: the whole image and its mirror",
    "multiview_18": "evaluate.py `multiview_18`: 18 views on the feature maps of one scale (a step towards Table 4; "
    "the paper gives no number for it)",
    "multiview_96": "evaluate.py `multiview_96`: 96 views on the feature maps at 6 scales",
    "multiview": "evaluate.py `multiview`: 96 views on the feature maps at 6 scales + 2 full-image views (the paper's "
    "Table 4)",
    "val": "the training runs' own validation after training (`val/*` in their metrics.json, on the training-time "
    "validation view, of the checkpoint `eval_checkpoint` names)",
}
EVALUATE_HINT = (
    "python evaluate.py ckpt_path=<run>/checkpoints/last.ckpt protocols=[center,ten_view,full,multiview], "
    "or train with evaluate_protocols=[...]"
)
NOT_DONE_MARK = "†"
#: the multi-view protocols of Table 4, fewest views first
MULTIVIEW = ("multiview_18", "multiview_96", "multiview")
REPORT_MD, REPORT_CSV = "report.md", "report.csv"
CSV_COLUMNS = (
    "context",
    "data",
    "arch",
    "network",
    "arm",
    "pyramid",
    "source",
    "checkpoints",
    "n",
    "runs",
    "not_done",
    "seeds",
    "top1_mean",
    "top1_std",
    "top5_mean",
    "top5_std",
    "paper_top1",
    "paper_top5",
    "diff_top1",
    "diff_top5",
    "gain_top1_mean",
    "gain_top1_std",
    "gain_top5_mean",
    "gain_top5_std",
    "gain_n",
    "paper_gain_top1",
    "paper_gain_top5",
)


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
        missing = [
            f"`{p}` is missing for {seeds - ctx.seeds_with(p)[0]}" for p in ("ten_view", "center") if p != ctx.source
        ]
        line += f" ({', '.join(missing)}: the default takes the first source every sample has: ten_view, center, val)"
    if ctx.source != "ten_view" and _paper_network_groups(ctx):  # the paper has no numbers for timm backbones
        line += ". The paper's numbers in Table 2 and the extra lines are 10-view"
    return line + "."


def _checkpoint_line(ctx: ResultSet) -> str:
    """Which checkpoint the numbers of the tables come from: the final model (as the paper reports), or a warning
    where some are the best-on-validation checkpoint, chosen on the very split whose numbers they are."""
    suppliers = [
        (run, kind)
        for g in ctx.groups
        for seed, run in g.suppliers(ctx.source).items()
        for kind in [g.checkpoints(ctx.source)[seed]]
    ]
    if not suppliers:
        return ""
    kinds = {kind: sum(k == kind for _, k in suppliers) for kind in dict.fromkeys(k for _, k in suppliers)}
    if set(kinds) == {LAST}:
        return (
            "**Checkpoint: numbers from the final model of each run** (`last.ckpt`, `eval_checkpoint=last`), as "
            "the paper reports its final models: none is selected on the split it reports."
        )
    parts = []
    if kinds.get(BEST):
        old = sum(k == BEST and not run.eval_checkpoint_recorded for run, k in suppliers)
        parts.append(
            f"{kinds[BEST]} of {len(suppliers)} (group, seed) samples come from the best checkpoint (the "
            "epoch of lowest validation error), chosen on the split these numbers report: they are "
            "optimistic, most for an arm whose error zig-zags by epoch (multi-size)"
            + (
                f"; {old} of them from runs older than `eval_checkpoint`, which always tested the best checkpoint"
                if old
                else ""
            )
        )
    others = {k: n for k, n in kinds.items() if k not in (LAST, BEST)}
    if others:
        parts.append(
            f"{sum(others.values())} from other checkpoint files ("
            + ", ".join(f"`{k}`: {n}" for k, n in others.items())
            + ")"
        )
    if kinds.get(LAST):
        parts.append(f"{kinds[LAST]} from the final model")
    lead = "**Warning: selected on the split they report.** " if kinds.get(BEST) else "**Checkpoint:** "
    return (
        "> " + lead + "; ".join(parts) + ". The paper reports final models: train with `eval_checkpoint=last` (the "
        "default) or evaluate `<run>/checkpoints/last.ckpt` with evaluate.py."
    )


@dataclass
class SettingRow:
    """One line of the settings table: ours, the paper's, and whether they differ (None: ours not recorded)."""

    setting: str
    ours: str
    paper: str
    differs: Optional[bool]


def _joined(values: Iterable[Any]) -> str:
    return "/".join(dict.fromkeys(str(v) for v in values))


def _counted_metric(group: Group, key: str) -> list[Any]:
    """A metrics.json value of the group's counted runs (those that recorded it)."""
    return [r.metrics[key] for r in group.counted if r.metrics and r.metrics.get(key) is not None]


def _paper_network_groups(ctx: ResultSet) -> list[Group]:
    """The groups of the paper's networks: their width, fc layers, dropout, LRN and bins have a paper value to
    stand beside; a timm backbone's do not (:func:`_backbone_rows`)."""
    return [g for g in ctx.groups if not is_backbone(g)]


#: what the paper's column says for a setting of timm backbones, which the paper did not train
NOT_IN_PAPER = f"{NONE} (the paper's networks only)"


def _backbone_rows(ctx: ResultSet) -> list[SettingRow]:
    """The timm backbones' model settings: their width scales the backbone's own channels and their head is one
    optional fc layer (model.fc_dim, 0: none) before fc8, so the paper's Table 1 widths and fc6/fc7 do not apply."""
    groups = [g for g in ctx.groups if is_backbone(g)]
    if not groups:
        return []

    def head(config: dict[str, Any]) -> str:
        fc_dim, dropout = int(config.get("model.fc_dim") or 0), float(config.get("model.dropout") or 0)
        return ("fc8 on the pooled vector" if fc_dim == 0 else f"fc {fc_dim} → ReLU → fc8") + f", dropout {dropout:g}"

    widths = [g.config.get("model.width", 1.0) for g in groups]
    return [
        SettingRow("backbone width (× timm's channels)", _joined(widths), NOT_IN_PAPER, True),
        SettingRow("backbone head after pooling", _joined(head(g.config) for g in groups), NOT_IN_PAPER, True),
        SettingRow("backbone epochs", _joined(g.config.get("trainer.max_epochs") for g in groups), NOT_IN_PAPER, True),
    ]


def _simple_rows(ctx: ResultSet) -> list[SettingRow]:
    """Settings that are one config value each, against the paper's value."""

    def described(value: Any, names: dict[str, str]) -> str:
        return f"{names.get(str(value), value)} (`{value}`)" if str(value) in names else str(value)

    normalisation = {"channel": "per-channel mean/std", "mean_image": "per-pixel mean image"}
    crops = {"random": "random position", "five": "center or 4 corners"}
    # (label, key, the paper's value, value names, whether the setting is one of the paper's networks only)
    specs = [
        ("crop", "data.crop_size", paper.PAPER_CROP, {}, False),
        ("resize (short side)", "data.resize_size", paper.PAPER_RESIZE, {}, False),
        ("training crop", "data.train_crop", paper.PAPER_TRAIN_CROP, crops, False),
        ("width (× Table 1's channels)", "model.width", paper.PAPER_WIDTH, {}, True),
        ("fc6/fc7", "model.fc_dim", paper.PAPER_FC_DIM, {}, True),
        ("dropout", "model.dropout", paper.PAPER_DROPOUT, {}, True),
        ("momentum", "optim.momentum", paper.PAPER_MOMENTUM, {}, False),
        ("weight decay", "optim.weight_decay", paper.PAPER_WEIGHT_DECAY, {}, False),
        ("normalisation", "data.normalization", paper.PAPER_NORMALIZATION, normalisation, False),
    ]
    rows = []
    for label, key, expected, names, network_only in specs:
        groups = _paper_network_groups(ctx) if network_only else ctx.groups
        values = [v for g in groups if (v := g.config.get(key)) is not None]
        if values:
            rows.append(
                SettingRow(
                    label,
                    _joined(described(v, names) for v in values),
                    described(expected, names),
                    any(str(v) != str(expected) for v in values),
                )
            )
    return rows


def _size_rows(ctx: ResultSet) -> list[SettingRow]:
    """The multi-size and random-size arms' training sizes (the others train at the crop)."""
    rows = []
    for arm, expected in (("multi", list(paper.PAPER_MULTI_SIZES)), ("random", list(paper.PAPER_RANDOM_RANGE))):
        configured = [g.config.get("data.train_sizes") for g in ctx.groups if g.arm == arm]
        sizes = [list(v) for v in configured if isinstance(v, list)]
        if sizes:
            rows.append(
                SettingRow(
                    f"{ARMS[arm]} sizes",
                    _joined(sizes),
                    str(expected),
                    any(sorted(map(str, v)) != sorted(map(str, expected)) for v in sizes),
                )
            )
    return rows


def _schedule_text(config: dict[str, Any]) -> Optional[str]:
    scheduler = config.get("optim.scheduler")
    factor = config.get("optim.lr_factor", paper.PAPER_LR_FACTOR)
    divide = f"÷{1 / factor:g}" if factor else "× 0"
    if scheduler == "plateau":
        return f"{divide} on plateau, {config.get('optim.lr_drops', paper.PAPER_LR_DROPS)} times"
    if scheduler == "step":
        return f"{divide} at epochs {config.get('optim.step_milestones')} (step)"
    if scheduler == "cosine":
        return f"{config.get('optim.warmup_epochs', 0):g} warmup epochs, then cosine to 0 (per step)"
    return None if scheduler is None else str(scheduler)


#: the recipe as the paper trains (the modern recipe's switches off): docs/recipe.md
PAPER_RECIPE = "SGD"


def _recipe_text(config: dict[str, Any]) -> str:
    """The training recipe's switches of a run config (flattened keys), e.g. ``AdamW, label smoothing 0.1,
    MixUp 0.8, CutMix 1, RandAugment, EMA 0.9999 (tested: ema)``; ``SGD`` for the paper's."""
    names = {"sgd": "SGD", "adamw": "AdamW", "lamb": "LAMB", "lion": "Lion"}
    name = str(config.get("optim.name", "sgd"))
    parts = [names.get(name, name)]
    if float(config.get("optim.label_smoothing") or 0):
        parts.append(f"label smoothing {float(config['optim.label_smoothing']):g}")
    for key, label in (("optim.mixup_alpha", "MixUp"), ("optim.cutmix_alpha", "CutMix")):
        if float(config.get(key) or 0):
            parts.append(f"{label} {float(config[key]):g}")
    augment = str(config.get("data.auto_augment", "none"))
    if augment != "none":
        parts.append({"randaugment": "RandAugment", "trivialaugment": "TrivialAugment"}.get(augment, augment))
    if config.get("callbacks.ema.decay") is not None:
        parts.append(f"EMA {float(config['callbacks.ema.decay']):g} (tested: {config.get('eval_weights', 'ema')})")
    return ", ".join(parts)


def _training_rows(ctx: ResultSet) -> list[SettingRow]:
    """Recipe, schedule, batch and learning rate, epochs."""
    from spp_cls.lightning.optim import effective_lr

    rows = []
    recipes = [_recipe_text(g.config) for g in ctx.groups]
    if recipes:
        rows.append(SettingRow("recipe", _joined(recipes), PAPER_RECIPE, any(r != PAPER_RECIPE for r in recipes)))
    schedules = [t for g in ctx.groups if (t := _schedule_text(g.config))]
    if schedules:
        expected = {
            "optim.scheduler": paper.PAPER_SCHEDULER,
            "optim.lr_factor": paper.PAPER_LR_FACTOR,
            "optim.lr_drops": paper.PAPER_LR_DROPS,
        }
        paper_text = _schedule_text(expected) or ""
        rows.append(SettingRow("schedule", _joined(schedules), paper_text, any(t != paper_text for t in schedules)))
    batches = []
    for group in ctx.groups:
        config = group.config
        recorded = list(zip(_counted_metric(group, "step_batch"), _counted_metric(group, "lr")))
        if recorded:
            batches += recorded
        elif config.get("data.batch_size") is not None and config.get("optim.lr") is not None:
            batch = int(config["data.batch_size"]) * int(config.get("trainer.accumulate_grad_batches", 1))
            lr = effective_lr(
                float(config["optim.lr"]),
                batch,
                int(config.get("optim.base_batch_size", 128)),
                str(config.get("optim.lr_scaling", "linear")),
            )
            batches.append((batch, lr))
    if batches:
        rows.append(
            SettingRow(
                "batch at learning rate",
                _joined(f"{b} at {lr:.4g}" for b, lr in batches),
                f"{paper.PAPER_BATCH} at {paper.PAPER_LR:g}",
                any(b != paper.PAPER_BATCH or abs(lr - paper.PAPER_LR) > 1e-9 for b, lr in batches),
            )
        )
    epochs = {network_name(g.arch): g.config.get("trainer.max_epochs") for g in ctx.groups if g.arch in paper.NETWORKS}
    if epochs:
        rows.append(
            SettingRow(
                "epochs",
                ", ".join(f"{n} {e}" for n, e in epochs.items()),
                ", ".join(f"{n} {paper_epochs(a)}" for a, n in paper.NETWORKS.items() if n in epochs),
                any(e != paper_epochs(a) for a, n in paper.NETWORKS.items() if (e := epochs.get(n)) is not None),
            )
        )
    return rows


def _lrn_scale(group: Group) -> Optional[float]:
    """``model.lrn_input_scale`` of the group: recorded in metrics.json, else the config's number; 1.0 for runs
    from before the key (their LRN used Caffe's alpha on normalised input); None where it cannot be told."""
    recorded = _counted_metric(group, "lrn_input_scale")
    if recorded:
        return float(recorded[0])
    if "model.lrn_input_scale" not in group.config:
        return 1.0
    value = group.config["model.lrn_input_scale"]
    return float(value) if isinstance(value, (int, float)) else None


def _lrn_rows(ctx: ResultSet) -> list[SettingRow]:
    """The LRN: the paper's (the released Caffe ZF-5's) acts on 0-255 input; on normalised input it acts the same
    only when its alpha is rescaled by model.lrn_input_scale = 255 x data.std (spp_cls/models/lrn.py)."""
    texts, equivalents, differs = [], [], False
    for group in _paper_network_groups(ctx):
        lrn = group.config.get("model.lrn")
        if lrn is None:
            continue
        std = group.config.get("data.std")
        equivalent = 255.0 * sum(std) / len(std) if isinstance(std, list) and std else None
        scale = _lrn_scale(group)
        if lrn == "none":
            texts.append("none")
        elif scale is None:
            texts.append(f"{lrn}, input scale not recorded")
        else:
            texts.append(
                f"{lrn}, input scale {scale:.3g}" + (" (inert: Caffe's α on normalised input)" if scale == 1.0 else "")
            )
        if equivalent is not None:
            equivalents.append(f"{equivalent:.3g}")
        differs |= (
            lrn != paper.PAPER_LRN or scale is None or equivalent is None or abs(scale - equivalent) > 0.01 * equivalent
        )
    if not texts:
        return []
    paper_text = f"{paper.PAPER_LRN} on 0–255 input" + (
        f" (input scale {_joined(equivalents)} here: 255 × data.std)" if equivalents else ""
    )
    return [SettingRow("LRN", _joined(texts), paper_text, differs)]


def _bins_rows(ctx: ResultSet) -> list[SettingRow]:
    """Each arm's bins and fc6 input (metrics.json ``bins`` / ``fc6_inputs``) against the paper's: 36 bins without
    SPP, the pyramid's sum of squares with it; fc6 input = bins x Table 1's channels."""
    rows = []
    for group in _paper_network_groups(ctx):
        ours = list(dict.fromkeys(zip(_counted_metric(group, "bins"), _counted_metric(group, "fc6_inputs"))))
        bins = paper.paper_bins(group.arm, group.pyramid)
        channels = paper.PAPER_CHANNELS.get(group.arch)
        theirs = (
            f"{bins} / {bins * channels:,}"
            if bins is not None and channels
            else (str(bins) if bins is not None else f"{NONE} (no such arm)")
        )
        label = f"{network_name(group.arch)} {group.label}: bins / fc6 input"
        if not ours:
            rows.append(SettingRow(label, "not recorded (metrics.json before `bins`)", theirs, None))
            continue
        text = _joined(f"{b} / {f:,}" for b, f in ours)
        rows.append(SettingRow(label, text, theirs, text != theirs))
    return rows


def _settings_table(ctx: ResultSet) -> list[str]:
    """Where the runs depart from the paper's setting, as a table (setting | ours | paper), and what matches it:
    the paper's numbers beside ours come from its setting, so each difference is a reason they may differ."""
    rows = _simple_rows(ctx) + _backbone_rows(ctx) + _size_rows(ctx) + _training_rows(ctx)
    rows += _lrn_rows(ctx) + _bins_rows(ctx)
    shown = [r for r in rows if r.differs is not False]
    same = [r.setting for r in rows if r.differs is False]
    out = []
    if shown:
        out += [
            "**Setting vs the paper's** — where these runs depart from it (or their files do not say); the "
            "paper's numbers beside ours come from its setting",
            "",
            md_table(["setting", "ours", "paper"], [[r.setting, r.ours, r.paper] for r in shown], right=()),
            "",
        ]
    if same:
        out += [("As in the paper: " if shown else "**Setting: as the paper's** in ") + ", ".join(same) + ".", ""]
    return out


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
        rows.append(
            [
                network_name(group.arch),
                group.label,
                _per_seed(found),
                stat_text(top1, True),
                number(paper1, True),
                _per_seed(found, top5=True),
                stat_text(top5, True),
                number(paper5, True),
            ]
        )
    if not rows:
        return []
    header = [
        "network",
        "SPP arm",
        "top-1 gain per seed",
        "top-1 gain",
        "paper",
        "top-5 gain per seed",
        "top-5 gain",
        "paper",
    ]
    return [
        "**SPP vs no SPP, paired by seed** — gain = no-SPP error − SPP error of the same seed (positive: SPP "
        "better; the paper's brackets), mean ± std (n pairs)",
        "",
        md_table(header, rows, right=range(2, len(header))),
        "",
    ]


def _extras(ctx: ResultSet) -> list[str]:
    """Groups outside Table 2 (other pyramids, random-size training), with the numbers the paper gives in text."""
    rows = []
    for group in ctx.groups:
        if ctx.in_table2(group):
            continue
        top1, top5 = group.stats(ctx.source)
        theirs = paper.paper_error(group.arch, group.arm, group.pyramid)
        paper1, paper5 = (theirs.top1, theirs.top5) if theirs else (None, None)
        rows.append(
            [
                network_name(group.arch),
                ARMS.get(group.arm, group.arm),
                pyramid_text(group.pyramid),
                *_beside(group, top1, paper1),
                *_beside(group, top5, paper5),
            ]
        )
    if not rows:
        return []
    header = ["network", "arm", "pyramid", "top-1 ours", "paper", "Δ", "top-5 ours", "paper", "Δ"]
    return [
        "**Pyramid and random-size training** (paper: ZF-5 30-bin pyramid {4,3,2,1}; Overfeat-7 random size in "
        "[180, 224]) — Δ = ours − paper",
        "",
        md_table(header, rows, right=range(3, len(header))),
        "",
    ]


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
        rows.append(
            [
                f"{network_name(group.arch)}, {group.label}",
                *_beside(group, crop1, theirs and theirs[0]),
                *_beside(group, full1, theirs and theirs[1]),
                stat_text(gap, True),
                number(theirs and theirs[1] - theirs[0], True),
            ]
        )
    title = "**Table 3, one view, top-1 error (%)**: 1 crop (`center`) vs 1 full image (`full`), SPP networks"
    if not rows:
        return [title, "", f"No `center` or `full` evaluations of SPP runs here ({EVALUATE_HINT}).", ""]
    header = ["SPP net", "1 crop ours", "paper", "Δ", "1 full ours", "paper", "Δ", "full − crop (paired)", "paper"]
    return [title + " — Δ = ours − paper", "", md_table(header, rows), ""]


def _views(group: Group, protocol: str) -> Optional[float]:
    """Mean views per image of the evaluations of ``protocol`` that the group's numbers come from (square images
    get fewer distinct windows at the smallest scale: 92-94 of the 96 + 2 on a set with square images)."""
    found = [
        e["views_per_image"]
        for run in group.suppliers(protocol).values()
        if (e := run.evaluation(protocol)) and e.get("views_per_image") is not None
    ]
    return sum(found) / len(found) if found else None


#: the multi-view protocols' test setting, for the paper lookup: (full-image views, scales, layout, window, crop)
MultiviewKey = tuple[bool, Optional[tuple[int, ...]], str, Optional[int], int]


def _multiview_key(group: Group, protocol: str) -> Optional[MultiviewKey]:
    """The ``protocol.multiview`` setting every evaluation of the group's numbers ran with (None where they
    differ). ``multiview_96`` never has the 2 full-image views; ``multiview_18`` is one scale."""
    keys = set()
    for run in group.suppliers(protocol).values():
        evaluation = run.evaluation_of(protocol)
        settings = (evaluation.multiview if evaluation else None) or {}
        crop = int(run.get("data.crop_size", paper.PAPER_CROP))
        if protocol == "multiview_18":
            scales: Optional[tuple[int, ...]] = (int(run.get("data.resize_size", paper.PAPER_RESIZE)),)
        else:
            scales = tuple(int(x) for x in settings["scales"]) if settings.get("scales") else None
        full = protocol == "multiview" and bool(settings.get("full_views", True))
        keys.add((full, scales, str(settings.get("layout", paper.TABLE4_LAYOUT)), settings.get("window"), crop))
    return keys.pop() if len(keys) == 1 else None


def _multiview_label(protocol: str, key: Optional[MultiviewKey]) -> str:
    """``6 scales + 2 full (`multiview`)``: what the protocol tested, as the paper names its rows."""
    if protocol == "ten_view":
        return "10 views (`ten_view`)"
    if key is None:
        return f"mixed settings (`{protocol}`)"
    full, scales, _, _, _ = key
    count = len(scales) if scales else len(paper.TABLE4_SCALES)
    return f"{count} scale{'s' if count > 1 else ''}{' + 2 full' if full else ''} (`{protocol}`)"


def _table4(ctx: ResultSet) -> list[str]:
    """Table 4: 10-view vs multi-view testing, for the best SPP group that has multi-view evaluations; the gain
    over 10-view is paired by seed. The paper's number is looked up by the test's setting (6 scales, with or
    without the 2 full views), not by the views counted: those depend on the images' shapes."""
    title = "**Table 4, multi-view testing of the best network**"
    candidates = [g for g in ctx.groups if g.arm != "no_spp" and any(g.errors(p) for p in MULTIVIEW)]
    if not candidates:
        return [
            title,
            "",
            f"No multi-view evaluations ({', '.join(f'`{p}`' for p in MULTIVIEW)}) of SPP runs here ({EVALUATE_HINT}).",
            "",
        ]

    def rank(group: Group) -> tuple[int, float]:
        means = [group.stats(p)[0].mean for p in ("ten_view", *MULTIVIEW)]
        return next((i > 0, m) for i, m in enumerate(means) if m is not None)

    best = min(candidates, key=rank)
    rows = []
    views: Optional[float]
    found: Optional[tuple[int, paper.PaperError]]
    for protocol in ("ten_view", *MULTIVIEW):
        if not best.errors(protocol):
            continue
        if protocol == "ten_view":
            key, views, found = None, 10.0, (10, paper.TABLE4_TEN_VIEW)
        else:
            key, views = _multiview_key(best, protocol), _views(best, protocol)
            found = paper.table4_multiview(*key) if key is not None and protocol != "multiview_18" else None
        paper_views, theirs = found if found else (None, None)
        paper1, paper5 = (theirs.top1, theirs.top5) if theirs else (None, None)
        top1, top5 = best.stats(protocol)
        row = [
            _multiview_label(protocol, key),
            NONE if views is None else f"{views:.1f}",
            NONE if paper_views is None else str(paper_views),
            *_beside(best, top1, paper1),
            *_beside(best, top5, paper5),
        ]
        if protocol == "ten_view":
            row += [NONE] * 4
        else:
            gain1, gain5 = difference_stats(differences(best.errors("ten_view"), best.errors(protocol)))
            ten = paper.TABLE4_TEN_VIEW
            row += [
                stat_text(gain1, True),
                number(difference(ten.top1, paper1), True),
                stat_text(gain5, True),
                number(difference(ten.top5, paper5), True),
            ]
        rows.append(row)
    note = (
        f"Best network here: {network_name(best.arch)} {best.label} (lowest 10-view top-1 among SPP groups with "
        "multi-view evaluations)"
    )
    arm, arch = paper.TABLE4_NETWORK
    if (best.arm, best.arch, best.pyramid) != (arm, arch, paper.PAPER_PYRAMID):
        note += f"; the paper's rows are {network_name(arch)} {ARMS[arm]}"
    note += (
        "; views/image: the mean over images (a square image has fewer distinct windows at the smallest "
        "scale); the paper's number is that of the same test setting (its 6 scales, 18 windows a scale), "
        "and `multiview_18` (one scale) has none"
    )
    header = [
        "test",
        "views/image ours",
        "paper",
        "top-1 ours",
        "paper",
        "Δ",
        "top-5 ours",
        "paper",
        "Δ",
        "top-1 gain over 10-view",
        "paper",
        "top-5 gain over 10-view",
        "paper",
    ]
    return [
        title + " — Δ = ours − paper; gain = 10-view error − this error, paired by seed",
        "",
        note + ".",
        "",
        md_table(header, rows),
        "",
    ]


def _figures(ctx: ResultSet, index: int, total: int, curves: dict[Path, Curve], figures: dict[str, bytes]) -> list[str]:
    """A figure per network of the set (added to ``figures``) and the markdown that embeds them."""
    out = []
    for arch in ctx.archs:
        series = [
            Series(
                g.label,
                g.arm,
                g.pyramid not in (None, paper.PAPER_PYRAMID),
                [curves[r.path] for r in g.counted if curves.get(r.path)],
            )
            for g in ctx.groups
            if g.arch == arch
        ]
        series = [s for s in series if s.curves]
        if not series:
            continue
        name = f"val_top1_{arch}{f'_set{index}' if total > 1 else ''}.png"
        title = f"{network_name(arch)}: validation top-1 error per epoch"
        figures[name] = error_curves_png(title + (f" (result set {index})" if total > 1 else ""), series)
        out += [f"![{title}]({name})", ""]
    if out:
        out.insert(
            0,
            "**Validation top-1 error per epoch** (the training runs' per-epoch validation, whatever the "
            "metric above; done runs only; line: mean over seeds, band: min–max over seeds)\n",
        )
    return out


def _heading(ctx: ResultSet, index: int, total: int) -> list[str]:
    """The section title (data set, task names) and, where there are several result sets, what sets this one
    apart."""
    data = ", ".join(sorted({g.data_name for g in ctx.groups}))
    tasks = ", ".join(sorted({str(r.get("task_name")) for g in ctx.groups for r in g.runs}))
    out = [f"## Results{f' {index} of {total}' if total > 1 else ''}: data `{data}`, task `{tasks}`", ""]
    apart = [f"`{k}={v}`" for k, v in ctx.context if k not in ALWAYS_CONTEXT]
    if apart:
        out += [
            "Settings of this result set (where groups of one network and arm differ): " + ", ".join(apart) + ".",
            "",
        ]
    return out


def _context_section(
    ctx: ResultSet, index: int, total: int, curves: dict[Path, Curve], figures: dict[str, bytes]
) -> list[str]:
    out = _heading(ctx, index, total)
    if not ctx.imagenet:
        data = ", ".join(sorted({f"`{g.data_name}`" for g in ctx.groups}))
        out += [
            f"> **Not ImageNet.** These runs use the data set {data}; the paper's numbers are for ImageNet 2012 "
            "val. They are shown beside ours for orientation only: the differences are not a reproduction "
            "check.",
            "",
        ]
    out += _settings_table(ctx)
    out += [_metric_line(ctx), ""]
    checkpoint = _checkpoint_line(ctx)
    if checkpoint:
        out += [checkpoint, ""]
    where = environment_line([run for g in ctx.groups for run in g.suppliers(ctx.source).values()])
    if where:
        out += [where, ""]
    if any(r.status != DONE for g in ctx.groups for r in g.runs):
        out += [f"{NOT_DONE_MARK}: the group also has runs that are not done (see Runs); n counts done runs only.", ""]
    if any(is_backbone(g) for g in ctx.groups):  # timm backbones: no paper numbers, their heads side by side
        out += backbone_table(ctx.groups, ctx.source)
    if not all(is_backbone(g) for g in ctx.groups):
        for part in (_table2, _gains, _extras, _table3, _table4):
            out += part(ctx)
    return out + _figures(ctx, index, total, curves, figures)


def _relative(path: Path, base: Path) -> str:
    text = os.path.relpath(path, base)
    return path.name if text == "." else text


def _tested(run: Run) -> str:
    """``last`` / ``best``: what the run's after-training validation tested (old runs: best, as they all did)."""
    kind = run.eval_checkpoint
    if kind is None:
        return NONE
    return kind if run.eval_checkpoint_recorded else f"{kind} (run before `eval_checkpoint`)"


def _evaluations(run: Run) -> str:
    """The run's evaluated protocols, grouped by the checkpoint they tested: ``center, ten_view (last)``."""
    by_kind: dict[str, list[str]] = {}
    for protocol in run.protocols():
        by_kind.setdefault(run.checkpoint_kind(protocol) or "?", []).append(protocol)
    return "; ".join(f"{', '.join(names)} ({kind})" for kind, names in by_kind.items()) or NONE


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
        note = run.detail or (
            "seed also in a newer run: each metric from the newest run that has it" if id(run) in repeated else ""
        )
        rows.append(
            [
                _relative(run.path, base),
                network_name(run.arch),
                run.arm_label,
                pyramid_text(run.pyramid),
                str(run.seed),
                run.status,
                epochs,
                f"{number(val.top1)} / {number(val.top5)}" if val else NONE,
                _tested(run),
                _evaluations(run),
                note,
            ]
        )
    header = [
        "run",
        "network",
        "arm",
        "pyramid",
        "seed",
        "status",
        "epochs",
        "val top-1 / top-5 %",
        "tested",
        "evaluations (checkpoint)",
        "note",
    ]
    out = [
        "## Runs",
        "",
        f"Paths relative to `{base}`; epochs of a run that is not done: validated so far / "
        "configured; tested: the checkpoint of the run's own validation after training and its "
        "`evaluate_protocols` (`eval_checkpoint`: last = the final model, best = the epoch of lowest validation "
        "error).",
        "",
        md_table(header, rows, right={4, 6, 7}),
        "",
    ]
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
            paper1, paper5 = (theirs.top1, theirs.top5) if theirs else (None, None)
            baseline = ctx.find(group.arch, "no_spp")
            gains = paired_gains(baseline, group, ctx.source) if baseline and group.arm != "no_spp" else []
            gain1, gain5 = difference_stats(gains)
            paper_gain = _paper_gain(group.arch, group.arm, group.pyramid) if group.arm != "no_spp" else (None, None)
            writer.writerow(
                {
                    "context": context_text(ctx.context),
                    "data": group.data_name,
                    "arch": group.arch,
                    "network": network_name(group.arch),
                    "arm": group.arm,
                    "pyramid": pyramid_text(group.pyramid),
                    "source": ctx.source,
                    "checkpoints": " ".join(group.checkpoints(ctx.source).values()),
                    "n": top1.n,
                    "runs": len(group.runs),
                    "not_done": sum(r.status != DONE for r in group.runs),
                    "seeds": " ".join(str(s) for s in group.errors(ctx.source)),
                    "top1_mean": cell(top1.mean),
                    "top1_std": cell(top1.std),
                    "top5_mean": cell(top5.mean),
                    "top5_std": cell(top5.std),
                    "paper_top1": cell(paper1),
                    "paper_top5": cell(paper5),
                    "diff_top1": cell(difference(top1.mean, paper1)),
                    "diff_top5": cell(difference(top5.mean, paper5)),
                    "gain_top1_mean": cell(gain1.mean),
                    "gain_top1_std": cell(gain1.std),
                    "gain_top5_mean": cell(gain5.mean),
                    "gain_top5_std": cell(gain5.std),
                    "gain_n": gain1.n if gains else "",
                    "paper_gain_top1": cell(paper_gain[0]),
                    "paper_gain_top5": cell(paper_gain[1]),
                }
            )
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
    md = [
        "# SPP-net experiments report",
        "",
        f"Made {time.strftime('%Y-%m-%d %H:%M')} from " + ", ".join(f"`{d}`" for d in dirs) + ".",
        "",
        f"**Training runs: {len(found.runs)}** ({status['done']} done, {status['running']} running, "
        f"{status['failed']} failed) in {len(groups)} experiment groups; {evaluations} evaluate.py results matched "
        "to runs. Runs that are not done are listed with their status and left out of every number.",
        "",
        "Numbers are error rates in %, as mean ± sample standard deviation (n) over the seeds of one experiment "
        "(runs whose configs differ only in `seed`, `task_name` and where they ran); several done runs with one seed "
        "are one sample, each metric from the newest run that has it. "
        "The paper's numbers (He et al., TPAMI 2015, ImageNet 2012 val) stand beside ours.",
        "",
    ]
    not_done = [r for r in found.runs if r.status != DONE]
    if not_done:
        listed = [f"`{_relative(r.path, base)}` {r.status}" + (f" ({r.detail})" if r.detail else "") for r in not_done]
        md += ["Not done: " + "; ".join(listed) + ".", ""]
    figures: dict[str, bytes] = {}
    for index, ctx in enumerate(sets, 1):
        md += _context_section(ctx, index, len(sets), curves, figures)
    md += _runs_section(found, groups, base, curves)
    return Report("\n".join(md).rstrip() + "\n", _csv(sets), figures, len(found.runs))
