"""The global rank of a process before Lightning runs, from whatever launched it (it names the process's log file)."""

from __future__ import annotations

import pytest

from spp_cls.lightning.cluster import process_rank

LAUNCH_VARIABLES = (
    "SLURM_PROCID",
    "SLURM_NTASKS",
    "SLURM_JOB_NAME",
    "SUBMITIT_EXECUTOR",
    "RANK",
    "NODE_RANK",
    "LOCAL_RANK",
)


@pytest.mark.parametrize(
    ("env", "devices", "rank"),
    [
        ({}, 4, 0),  # started alone
        ({"LOCAL_RANK": "1"}, 2, 1),  # Lightning's second DDP process on this node
        ({"NODE_RANK": "1", "LOCAL_RANK": "0"}, 1, 1),  # the second node's process, started by hand
        ({"NODE_RANK": "1", "LOCAL_RANK": "2"}, 4, 6),
        ({"RANK": "5", "NODE_RANK": "1", "LOCAL_RANK": "1"}, 4, 5),  # torchrun says it outright
    ],
)
def test_rank_from_the_launchers_variables(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], devices: int, rank: int
) -> None:
    for name in LAUNCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert process_rank(devices) == rank
