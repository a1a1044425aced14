"""data.num_workers=auto: the CPU cores of this process, shared by the node's training processes, less one; and the
Lightning lines spp_cls.lightning.cluster silences (advertising tips, the srun hint) while others still show."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Iterator

import pytest

from spp_cls.lightning import cluster
from spp_cls.lightning.cluster import loader_workers
from tests.helpers import REPO


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


# ------------------------------------------------------------------ Lightning's adverts and srun hint (silenced)
class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def lightning_log() -> Iterator[list[str]]:
    """What Lightning's loggers hand to their handlers while the test runs."""
    handler, logger = _Records(), logging.getLogger("pytorch_lightning")
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def fake_srun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An srun on PATH, as on a Slurm login or compute node (Lightning looks it up with shutil.which)."""
    srun = tmp_path / "bin" / "srun"
    srun.parent.mkdir()
    srun.write_text("#!/bin/sh\nexit 0\n")
    srun.chmod(0o755)
    monkeypatch.setenv("PATH", f"{srun.parent}{os.pathsep}{os.environ['PATH']}")
    for name in [name for name in os.environ if name.startswith("SLURM_")]:
        monkeypatch.delenv(name)


def test_a_trainer_logs_no_adverts_but_its_other_lines(lightning_log: list[str], tmp_path: Path) -> None:
    import pytorch_lightning as pl
    from pytorch_lightning.loggers import CSVLogger

    pl.Trainer(accelerator="cpu", devices=1, logger=CSVLogger(tmp_path), default_root_dir=tmp_path)
    assert any("GPU available" in line for line in lightning_log), lightning_log  # real information still shows
    assert not [line for line in lightning_log if "Tip:" in line or "litlogger" in line]


def test_the_filter_drops_tips_only(lightning_log: list[str]) -> None:
    from pytorch_lightning.utilities.rank_zero import rank_zero_info

    rank_zero_info("💡 Tip: For seamless cloud uploads and versioning, try installing [litmodels](...)")
    rank_zero_info("Tip: try installing [litlogger](...)")
    rank_zero_info("Restoring states from the checkpoint path at x.ckpt (Tip: not at the start)")
    assert lightning_log == ["Restoring states from the checkpoint path at x.ckpt (Tip: not at the start)"]


def test_the_srun_hint_is_silenced_other_warnings_are_not(fake_srun: None) -> None:
    from lightning_fabric.plugins.environments import SLURMEnvironment
    from lightning_fabric.utilities.warnings import PossibleUserWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        SLURMEnvironment._validate_srun_used()  # what Lightning warns about: srun exists and did not start us
        assert [str(w.message) for w in caught if "srun" in str(w.message)], "the fake srun did not provoke the hint"
        caught.clear()
        cluster.quiet_lightning_adverts()  # as on import (pytest resets the warning filters around each test)
        SLURMEnvironment._validate_srun_used()
        warnings.warn("a real possible mistake", PossibleUserWarning, stacklevel=1)
        warnings.warn("The `srun` command is available on your system but is not used", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == [
        "a real possible mistake",
        "The `srun` command is available on your system but is not used",
    ]


@pytest.mark.slow
def test_a_smoke_run_shows_neither_tips_nor_the_srun_hint(fake_srun: None, tiny_data: Path, tmp_path: Path) -> None:
    """train.py as a user runs it (warnings shown) on a machine with srun: stderr, stdout and train.log are free of
    the adverts and the hint, and Lightning's own lines are still there."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "train.py"),
            "experiment=smoke",
            f"data.root={tiny_data}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = (tmp_path / "run" / "train.log").read_text()
    everything = result.stdout + result.stderr + log
    assert "GPU available" in result.stderr and "epoch 1/1:" in log
    for advert in ("Tip:", "litlogger", "litmodels", "`srun` command"):
        assert advert not in everything, advert
