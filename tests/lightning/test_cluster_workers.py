"""data.num_workers=auto: the CPU cores of this process, shared by the node's training processes, less one."""

from __future__ import annotations

import os

import pytest

from spp_cls.lightning import cluster
from spp_cls.lightning.cluster import loader_workers


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch):
    """A 32-core machine; the test sets this process's CPU set and who started the processes."""
    def set_up(cpu_set: int, external: tuple[int, int] | None = None) -> None:
        monkeypatch.setattr(os, "cpu_count", lambda: 32)
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpu_set)), raising=False)
        monkeypatch.setattr(cluster, "external_tasks", lambda: external)
    return set_up


def test_a_number_is_kept(machine) -> None:
    machine(32)
    assert loader_workers(3, 4) == 3 and loader_workers(0, 1) == 0


def test_lightning_started_processes_share_the_machine(machine) -> None:
    machine(32)
    assert loader_workers("auto", 4) == 7 and loader_workers("auto", 1) == 31


def test_slurm_tasks_bound_to_their_cpus_keep_them(machine) -> None:
    machine(8, external=(4, 1))  # --cpus-per-task=8 with task binding: this task's own 8 cores
    assert loader_workers("auto", 4) == 7


def test_slurm_tasks_without_binding_share_the_node(machine) -> None:
    machine(32, external=(4, 1))
    assert loader_workers("auto", 4) == 7


def test_at_least_one_worker(machine) -> None:
    machine(2)
    assert loader_workers("auto", 4) == 1
