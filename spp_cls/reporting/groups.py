"""Repeats of one experiment (runs whose configs differ only in the seed) as groups; their mean ± sample std;
which metric source a table uses; and the paired SPP vs no-SPP differences per seed."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from spp_cls.reporting.paper import NETWORKS, PAPER_PYRAMID
from spp_cls.reporting.runs import ARMS, DONE, ErrorRate, Run, flatten

#: config keys that say where or how a run was executed (or logged), not what was trained: runs that differ
#: only in these and the seed are repeats of one experiment. A key covers its sub-keys.
NOT_EXPERIMENT = (
    "seed",
    "task_name",
    "tags",
    "ckpt_path",
    "evaluate_protocols",
    "paths",
    "hydra",
    "logger",
    "data.root",
    "data.synthetic_folder",
    "data.list_cache_dir",
    "data.num_workers",
    "model.paper_epochs",
    "trainer.enable_progress_bar",
    "trainer.log_every_n_steps",
)
ContextKey = tuple[tuple[str, str], ...]  # (config key, value as text) per context key

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
    return Stat(
        statistics.fmean(values) if values else None, statistics.stdev(values) if len(values) > 1 else None, len(values)
    )


def seed_order(seed: Any) -> tuple[int, Any]:
    """Numeric seeds in numeric order, anything else after them as text."""
    return (0, seed) if isinstance(seed, (int, float)) else (1, str(seed))


def experiment_config(run: Run) -> dict[str, Any]:
    """The flat config that identifies the experiment: without the seed and :data:`NOT_EXPERIMENT`, and without
    settings the run does not use (the pyramid of a no-SPP model, the schedule of single-size training)."""
    config = {
        k: v for k, v in flatten(run.config).items() if not any(k == p or k.startswith(p + ".") for p in NOT_EXPERIMENT)
    }
    if not run.spp:
        config.pop("model.pyramid", None)
    if run.arm in ("no_spp", "single"):
        config.pop("data.size_schedule", None)  # unused with one size
        if {str(s) for s in run.train_sizes} == {str(run.get("data.crop_size"))}:
            config.pop("data.train_sizes", None)  # the default [crop_size]
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
    """The runs of one experiment (all statuses). Only done runs count. Several done runs with one seed (e.g.
    the table2 and table3 sweeps both train SPP ZF-5 with seed 0, and evaluate it differently) are one sample:
    each metric comes from the newest of them that has it."""

    config: dict[str, Any]
    runs: list[Run]

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
        return self.runs[0].arm_label + extra

    def _newest_first(self) -> list[Run]:
        return sorted((r for r in self.runs if r.status == DONE), key=lambda r: r.finished, reverse=True)

    @property
    def counted(self) -> list[Run]:
        """One done run per seed (the newest), in seed order: the samples, e.g. for the curves."""
        newest: dict[Any, Run] = {}
        for run in self._newest_first():
            newest.setdefault(run.seed, run)
        return [newest[s] for s in sorted(newest, key=seed_order)]

    @property
    def repeated(self) -> list[Run]:
        """Done runs whose seed a newer run of the group also has."""
        counted = {id(r) for r in self.counted}
        return [r for r in self.runs if r.status == DONE and id(r) not in counted]

    def suppliers(self, source: str) -> dict[Any, Run]:
        """Seed -> the newest done run of that seed that has numbers from ``source`` (the one they come from)."""
        found: dict[Any, Run] = {}
        for run in self._newest_first():
            if run.seed not in found and run.error(source) is not None:
                found[run.seed] = run
        return {seed: found[seed] for seed in sorted(found, key=seed_order)}

    def errors(self, source: str) -> dict[Any, ErrorRate]:
        """Seed -> error rates from ``source``, of the newest done run of that seed that has them."""
        return {seed: run.error(source) for seed, run in self.suppliers(source).items()}  # type: ignore[misc]

    def checkpoints(self, source: str) -> dict[Any, str]:
        """Seed -> which checkpoint (``last``, ``best``, ...) the numbers of ``source`` come from."""
        return {seed: run.checkpoint_kind(source) or "?" for seed, run in self.suppliers(source).items()}

    def complete(self, source: str) -> bool:
        """Whether every seed of the group has ``source``."""
        return len(self.errors(source)) == len(self.counted)

    def stats(self, source: str) -> tuple[Stat, Stat]:
        """Top-1 and top-5 error statistics (%) over seeds."""
        errors = list(self.errors(source).values())
        return stat([e.top1 for e in errors]), stat([e.top5 for e in errors if e.top5 is not None])

    def sort_key(self) -> tuple[Any, ...]:
        arch = list(NETWORKS).index(self.arch) if self.arch in NETWORKS else len(NETWORKS)
        arm = list(ARMS).index(self.arm) if self.arm in ARMS else len(ARMS)
        return (arch, self.arch, arm, self.pyramid or ())


def pyramid_text(pyramid: Optional[Sequence[int]]) -> str:
    return "-" if not pyramid else "{" + ",".join(str(n) for n in pyramid) + "}"


def context_text(context: ContextKey) -> str:
    """``data.name=imagenet, optim.lr=0.01``"""
    return ", ".join(f"{k}={v}" for k, v in context)


def group_runs(runs: Sequence[Run]) -> list[Group]:
    """Runs with one experiment config as groups, in table order (network, arm, pyramid)."""
    by_key: dict[str, Group] = {}
    for run in runs:
        config = experiment_config(run)
        by_key.setdefault(json.dumps(config, sort_keys=True, default=str), Group(config, [])).runs.append(run)
    return sorted(by_key.values(), key=Group.sort_key)


def context_keys(groups: Sequence[Group]) -> list[str]:
    """The config keys that tell apart groups of one network, arm and pyramid (e.g. two learning rates, two
    multi-size pairs), plus the data set: the groups with one value of each make one set of tables."""
    same_label: dict[tuple[Any, ...], list[Group]] = defaultdict(list)
    for group in groups:
        same_label[(group.arch, group.arm, group.pyramid)].append(group)
    keys = set(ALWAYS_CONTEXT)
    for alike in same_label.values():
        for key in set().union(*(g.config for g in alike)):
            if len({_text(g.config.get(key)) for g in alike if key in g.config}) > 1:
                keys.add(key)
    return list(ALWAYS_CONTEXT) + sorted(keys - set(ALWAYS_CONTEXT))


def result_sets(groups: Sequence[Group]) -> list[tuple[ContextKey, list[Group]]]:
    """The result sets: each context (values of :func:`context_keys`) with its groups, in order.

    A group without a context key (e.g. no ``data.size_schedule`` in a single-size run) fits every value of it,
    so single-size and no-SPP groups join each multi-size variant's set; a set is made for each most specific
    context, and of two groups of one network and arm in a set the more specific one is kept.
    """
    keys = context_keys(groups)

    def values(group: Group) -> tuple[Optional[str], ...]:
        return tuple(_text(group.config[k]) if k in group.config else None for k in keys)

    def fits(general: tuple[Optional[str], ...], specific: tuple[Optional[str], ...]) -> bool:
        return all(g is None or g == s for g, s in zip(general, specific))

    candidates = list(dict.fromkeys(values(g) for g in groups))
    most_specific = [c for c in candidates if not any(o != c and fits(c, o) for o in candidates)]
    found = []
    for context in sorted(most_specific, key=lambda c: [v or "" for v in c]):
        members: dict[tuple[Any, ...], Group] = {}
        for group in groups:
            if fits(values(group), context):
                label = (group.arch, group.arm, group.pyramid)
                known = members.get(label)
                if known is None or sum(v is None for v in values(group)) < sum(v is None for v in values(known)):
                    members[label] = group
        chosen = sorted(members.values(), key=Group.sort_key)
        found.append((tuple((k, v) for k, v in zip(keys, context) if v is not None), chosen))
    return found


def choose_source(groups: Sequence[Group], requested: Optional[str] = None) -> str:
    """The metric source of a table: ``requested``, else the first of :data:`DEFAULT_SOURCES` that every seed of
    every group with done runs has; "val" always exists for a done run."""
    if requested:
        return requested
    groups = [g for g in groups if g.counted]
    for source in DEFAULT_SOURCES[:-1]:
        if groups and all(g.complete(source) for g in groups):
            return source
    return DEFAULT_SOURCES[-1]


def differences(first: dict[Any, ErrorRate], second: dict[Any, ErrorRate]) -> list[SeedDifference]:
    """Per seed that both have: ``first`` − ``second`` (points)."""
    found = []
    for seed in sorted(set(first) & set(second), key=seed_order):
        a, b = first[seed], second[seed]
        top5 = None if a.top5 is None or b.top5 is None else a.top5 - b.top5
        found.append(SeedDifference(seed, a.top1 - b.top1, top5))
    return found


def paired_gains(baseline: Group, spp: Group, source: str) -> list[SeedDifference]:
    """The SPP gain per seed: no-SPP error − SPP error of the same seed (positive: SPP is better, as the paper's
    brackets)."""
    return differences(baseline.errors(source), spp.errors(source))


def difference_stats(found: Sequence[SeedDifference]) -> tuple[Stat, Stat]:
    """Mean ± sample std (n) of paired top-1 and top-5 differences."""
    return stat([d.top1 for d in found]), stat([d.top5 for d in found if d.top5 is not None])
