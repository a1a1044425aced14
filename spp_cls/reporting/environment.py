"""The report's line on where the runs behind a set of tables ran (metrics.json's ``environment``, written by
``spp_cls.cli.environment``): one line when they all ran alike, each environment with its run count when not.

Why it is in the report: the same config and seed give different numbers on a machine with another vector unit
or thread count (README, "The main job"), so a difference between two arms that ran in different environments
is partly that, and a reader comparing with the README's numbers needs to know where those came from.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Optional, Sequence

from spp_cls.reporting.runs import Run


def environment_of(run: Run) -> Optional[dict[str, Any]]:
    """The run's recorded environment (None: a run older than the record, or one that did not finish)."""
    record = (run.metrics or {}).get("environment")
    return record if isinstance(record, dict) else None


def describe_environment(env: dict[str, Any]) -> str:
    """One environment in words: code, torch, the CPU with its vector unit and threads, the devices."""
    cpu = f"{env.get('cpu', '?')} ({str(env.get('cpu_capability', '?')).upper()}, {env.get('threads', '?')} threads)"
    device, processes = env.get("device", "?"), env.get("processes", 1)
    on = f"{processes} process{'es' if processes != 1 else ''} on " + ("the CPU" if device == "cpu" else str(device))
    return f"code {env.get('code', '?')}, torch {env.get('torch', '?')}, {cpu}, {on}"


def environment_line(runs: Sequence[Run]) -> str:
    """The report's line for ``runs`` (those whose numbers the tables show); empty when none records one."""
    described = [describe_environment(env) if (env := environment_of(run)) else None for run in runs]
    counts = Counter(d for d in described if d is not None)
    if not counts:
        return ""
    unrecorded = sum(d is None for d in described)
    older = f"; {unrecorded} run{'s' if unrecorded != 1 else ''} older than this record" if unrecorded else ""
    if len(counts) == 1:
        [(only, _)] = counts.items()
        return f"**Where the runs ran**: {only}{older}."
    listed = "; ".join(f"{n} run{'s' if n != 1 else ''}: {d}" for d, n in counts.most_common())
    return (
        f"**Where the runs ran: {len(counts)} environments** — {listed}{older}. The same config and seed give "
        "different numbers where the code, the libraries, the vector unit or the thread count differ (another "
        "order of floating-point sums), so differences between runs of different environments include that."
    )
