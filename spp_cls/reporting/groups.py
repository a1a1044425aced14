"""Repeats of one experiment (runs whose configs differ only in the seed) as groups; their mean ± sample std;
which metric source a table uses; and the paired SPP vs no-SPP differences per seed."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from spp_cls.reporting.paper import NETWORKS, PAPER_PYRAMID
from spp_cls.reporting.runs import ARMS, DONE, ErrorRate, Run, flatten

#: config keys that say where or how a run was executed (or logged), not what was trained: runs that differ
#: only in these and the seed are repeats of one experiment. A key covers its sub-keys.
NOT_EXPERIMENT = ("seed", "task_name", "tags", "ckpt_path", "paths", "hydra", "logger", "data.root",
                  "data.synthetic_folder", "data.list_cache_dir", "data.num_workers", "model.paper_epochs",
                  "trainer.enable_progress_bar", "trainer.log_every_n_steps")
#: always part of a group's context: the paper's numbers only hold for ImageNet
ALWAYS_CONTEXT = ("data.name",)
#: the default metric sources, best first: the paper's Table 2 protocol, one crop, the training validation
DEFAULT_SOURCES = ("ten_view", "center", "val")


@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation (n − 1) of n values; None where n is too small."""

    mean: Optional[float]
    std: Optional[float]
    n: int


def stat(values: Sequence[float]) -> Stat:
    """The mean ± sample std of ``values`` (std needs two values)."""
    values = list(values)
    return Stat(statistics.fmean(values) if values else None, statistics.stdev(values) if len(values) > 1 else None,
                len(values))


def seed_order(seed: Any) -> tuple[int, Any]:
    """Numeric seeds in numeric order, anything else after them as text."""
    return (0, seed) if isinstance(seed, (int, float)) else (1, str(seed))


def experiment_config(run: Run) -> dict[str, Any]:
    """The flat config that identifies the experiment: without the seed and :data:`NOT_EXPERIMENT`, and without
    settings the run does not use (the pyramid of a no-SPP model, the schedule of single-size training)."""
    config = {k: v for k, v in flatten(run.config).items()
              if not any(k == p or k.startswith(p + ".") for p in NOT_EXPERIMENT)}
    if not run.spp:
        config.pop("model.pyramid", None)
    if run.arm in ("no_spp", "single"):
        config.pop("data.size_schedule", None)
    return config


def _text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str) if not isinstance(value, str) else value


@dataclass(frozen=True)
class SeedDifference:
    """The difference of two error rates of one seed, in points (top-1, top-5)."""

    seed: Any
    top1: float
    top5: Optional[float]


@dataclass
class Group:
    """The runs of one experiment (all statuses). Only done runs count, and of two done runs with one seed
    only the newer."""

    config: dict[str, Any]
    runs: list[Run]
    context: tuple[tuple[str, str], ...] = field(default=())

    @property
    def arch(self) -> str:
        return self.runs[0].arch

    @property
    def arm(self) -> str:
        return self.runs[0].arm

    @property
    def pyramid(self) -> Optional[tuple[int, ...]]:
        return self.runs[0].pyramid

    @property
    def data_name(self) -> str:
        return self.runs[0].data_name

    @property
    def label(self) -> str:
        """The arm, plus the pyramid where it is not the paper's {6,3,2,1}."""
        extra = "" if self.pyramid in (None, PAPER_PYRAMID) else " " + pyramid_text(self.pyramid)
        return ARMS.get(self.arm, self.arm) + extra

    @property
    def counted(self) -> list[Run]:
        """The done runs that enter the numbers: the newest per seed, in seed order."""
        newest: dict[Any, Run] = {}
        for run in self.runs:
            if run.status == DONE and (run.seed not in newest or run.finished >= newest[run.seed].finished):
                newest[run.seed] = run
        return [newest[s] for s in sorted(newest, key=seed_order)]

    @property
    def repeated(self) -> list[Run]:
        """Done runs left out because a newer run has the same seed."""
        counted = {id(r) for r in self.counted}
        return [r for r in self.runs if r.status == DONE and id(r) not in counted]

    def errors(self, source: str) -> dict[Any, ErrorRate]:
        """Seed -> error rates of the counted runs that have ``source``."""
        found = {run.seed: run.error(source) for run in self.counted}
        return {seed: error for seed, error in found.items() if error is not None}

    def stats(self, source: str) -> tuple[Stat, Stat]:
        """Top-1 and top-5 error statistics (%) over seeds."""
        errors = list(self.errors(source).values())
        return stat([e.top1 for e in errors]), stat([e.top5 for e in errors if e.top5 is not None])

    def sort_key(self) -> tuple[Any, ...]:
        arch = list(NETWORKS).index(self.arch) if self.arch in NETWORKS else len(NETWORKS)
        arm = list(ARMS).index(self.arm) if self.arm in ARMS else len(ARMS)
        return (self.context, arch, self.arch, arm, self.pyramid or ())


def pyramid_text(pyramid: Optional[Sequence[int]]) -> str:
    return "-" if not pyramid else "{" + ",".join(str(n) for n in pyramid) + "}"


def context_text(context: tuple[tuple[str, str], ...]) -> str:
    return ", ".join(f"{k}={v}" for k, v in context)


def group_runs(runs: Sequence[Run]) -> list[Group]:
    """Runs with one experiment config as groups, each with its context: the values of the config keys that
    tell apart groups of one network and arm (e.g. two learning rates), plus the data set. Groups of one
    context make one set of tables."""
    by_key: dict[str, Group] = {}
    for run in runs:
        config = experiment_config(run)
        by_key.setdefault(json.dumps(config, sort_keys=True, default=str), Group(config, [])).runs.append(run)
    groups = list(by_key.values())
    same_label: dict[tuple[Any, ...], list[Group]] = defaultdict(list)
    for group in groups:
        same_label[(group.arch, group.arm, group.pyramid)].append(group)
    keys = set(ALWAYS_CONTEXT)
    for alike in same_label.values():
        for key in set().union(*(g.config for g in alike)):
            if len({_text(g.config.get(key)) for g in alike}) > 1:
                keys.add(key)
    ordered = [k for k in ALWAYS_CONTEXT] + sorted(keys - set(ALWAYS_CONTEXT))
    for group in groups:
        group.context = tuple((k, _text(group.config.get(k))) for k in ordered)
    return sorted(groups, key=Group.sort_key)


def choose_source(runs: Sequence[Run], requested: Optional[str] = None) -> str:
    """The metric source of a table: ``requested``, else the first of :data:`DEFAULT_SOURCES` that every one of
    ``runs`` (its counted runs) has; "val" always exists for a done run."""
    if requested:
        return requested
    for source in DEFAULT_SOURCES[:-1]:
        if runs and all(run.error(source) is not None for run in runs):
            return source
    return DEFAULT_SOURCES[-1]


def differences(first: dict[Any, ErrorRate], second: dict[Any, ErrorRate]) -> list[SeedDifference]:
    """Per seed that both have: ``first`` − ``second`` (points)."""
    found = []
    for seed in sorted(set(first) & set(second), key=seed_order):
        a, b = first[seed], second[seed]
        found.append(SeedDifference(seed, a.top1 - b.top1, None if a.top5 is None or b.top5 is None else a.top5 - b.top5))
    return found


def paired_gains(baseline: Group, spp: Group, source: str) -> list[SeedDifference]:
    """The SPP gain per seed: no-SPP error − SPP error of the same seed (positive: SPP is better, as the paper's
    brackets)."""
    return differences(baseline.errors(source), spp.errors(source))


def difference_stats(found: Sequence[SeedDifference]) -> tuple[Stat, Stat]:
    """Mean ± sample std (n) of paired top-1 and top-5 differences."""
    return stat([d.top1 for d in found]), stat([d.top5 for d in found if d.top5 is not None])
