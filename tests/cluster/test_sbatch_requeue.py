"""scripts/slurm/train.sbatch on a real (local) Slurm: a 2-task DDP job started by srun gets SIGUSR1 (as before
its time limit), writes its checkpoints at the next batch boundary, is requeued by Lightning's SLURMEnvironment,
resumes in its run directory (keyed on the job id, which a requeue keeps) and ends as an uninterrupted run."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from spp_cls.checkpointing import load_safe
from tests.cluster.resume_checks import assert_same_run, cluster_env, train_uninterrupted
from tests.helpers import REPO
from tests.slurm_cluster import LocalSlurm

TRAINING = ("experiment=smoke", "trainer.deterministic=true", "trainer.max_epochs=8", "trainer.strategy=ddp")


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.5)


@pytest.mark.slow
def test_sbatch_script_requeues_through_lightning_and_resumes_exactly(
    local_slurm: LocalSlurm, tiny_data: Path, tmp_path: Path
) -> None:
    env = cluster_env(local_slurm)
    training = [*TRAINING, f"data.root={tiny_data}"]
    train_uninterrupted(env, tmp_path / "uninterrupted", *training, "trainer.devices=2")

    run = tmp_path / "run"
    submit = [
        "sbatch",
        "--parsable",
        "--ntasks-per-node=2",
        "--cpus-per-task=1",
        f"--output={tmp_path / 'job.out'}",
        str(REPO / "scripts" / "slurm" / "train.sbatch"),
        *training,
    ]
    job_env = dict(env, SPP_PYTHON=sys.executable, SPP_RUN_DIR=str(run))
    submitted = subprocess.run(submit, cwd=REPO, env=job_env, capture_output=True, text=True, timeout=60)
    assert submitted.returncode == 0, submitted.stderr
    job = submitted.stdout.strip()

    last = run / "checkpoints" / "last.ckpt"
    _wait(last.is_file, 300, "the first epoch's checkpoint")  # training is under way
    local_slurm.run("scancel", "--signal=USR1", job)  # what --signal=SIGUSR1@300 sends before the time limit
    local_slurm.wait_for_restart(job, 1, timeout=120)
    local_slurm.wait_for_state(job, "PENDING", timeout=60)
    local_slurm.release(job)
    done = local_slurm.wait_for_state(job, "COMPLETED", timeout=600)
    assert done["Restarts"] == "1"

    assert list(run.glob("hpc_ckpt_*.ckpt"))  # Lightning's requeue saved too
    log = (run / "train.log").read_text()
    assert "SIGUSR1 received" in log and "resumed at epoch" in log
    assert log.count("- run directory: ") == 2 and (run / "train_rank1.log").is_file()  # rank 0's two starts only
    assert_same_run(run, tmp_path / "uninterrupted", steps=8 * 4)
    assert load_safe(last)["epoch"] == 8
