"""Lightning's Slurm requeue after the fit: the signal requeues the job without writing a checkpoint of the
evaluation (which ``ckpt_path=auto`` would rank above the fit's complete ``last.ckpt``)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Iterator

import pytest
import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.environments import SLURMEnvironment
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from spp_cls.lightning.signals import requeue_slurm_job, requeue_without_checkpoint
from tests.helpers import quiet_trainer


class Tiny(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(2, 2)

    def validation_step(self, batch: list[torch.Tensor], index: int) -> None:
        self.log("val/loss", self.layer(batch[0]).square().mean())


class SignalInValidation(pl.Callback):
    """What Slurm does before the time limit (``--signal=SIGUSR1@300``), here in the middle of a validation."""

    def on_validation_batch_end(self, *args: object) -> None:
        os.kill(os.getpid(), signal.SIGUSR1)


@pytest.fixture
def slurm_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A one-task Slurm job's variables and a stand-in ``scontrol`` that notes its arguments."""
    for name in [name for name in os.environ if name.startswith("SLURM_")]:
        monkeypatch.delenv(name)
    for name, value in dict(
        SLURM_JOB_ID="4242", SLURM_NTASKS="1", SLURM_PROCID="0", SLURM_LOCALID="0", SLURM_NODEID="0"
    ).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SLURM_JOB_NAME", "spp-train")
    bin_dir, calls = tmp_path / "bin", tmp_path / "scontrol.calls"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    (bin_dir / "scontrol").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    previous = signal.getsignal(signal.SIGUSR1)
    yield calls
    signal.signal(signal.SIGUSR1, previous)


@pytest.mark.parametrize("guarded", [False, True])
def test_a_requeue_signal_after_the_fit_requeues_without_an_evaluation_checkpoint(
    tmp_path: Path, slurm_job: Path, guarded: bool
) -> None:
    trainer = quiet_trainer(
        tmp_path / "run", plugins=[SLURMEnvironment(auto_requeue=True)], callbacks=[SignalInValidation()]
    )
    loader = DataLoader(TensorDataset(torch.ones(4, 2)), batch_size=2)
    if guarded:
        before = signal.getsignal(signal.SIGUSR1)
        with requeue_without_checkpoint(trainer):
            trainer.validate(Tiny(), loader)
        assert signal.getsignal(signal.SIGUSR1) == before  # the handler from before is back
    else:  # what Lightning does on its own: a checkpoint of the validated module, then the requeue
        trainer.validate(Tiny(), loader)
    written = sorted(p.name for p in (tmp_path / "run").glob("hpc_ckpt_*.ckpt"))
    assert written == ([] if guarded else ["hpc_ckpt_1.ckpt", "hpc_ckpt_2.ckpt"])  # one per signal: per batch
    assert slurm_job.read_text().splitlines() == ["requeue 4242"] * 2


def test_without_lightnings_slurm_requeue_nothing_is_installed(tmp_path: Path) -> None:
    trainer = quiet_trainer(tmp_path, plugins=[SLURMEnvironment(auto_requeue=False)])
    before = signal.getsignal(signal.SIGUSR1)
    with requeue_without_checkpoint(trainer):
        assert signal.getsignal(signal.SIGUSR1) == before


def test_the_requeue_never_raises_in_its_signal_handler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No scontrol on the PATH (Lightning retries through a shell, as here): a warning and a status, no exception
    in the middle of an evaluation."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    assert requeue_slurm_job() == 127  # the shell's "command not found"
    monkeypatch.delenv("SLURM_JOB_ID")
    assert requeue_slurm_job() == 127
