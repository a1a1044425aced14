"""Through Hydra's submitit_slurm launcher on a real (local) Slurm: a training with a 1-minute time limit is
signalled (USR2), checkpoints at the next batch boundary, is requeued by submitit, resumes in the same run
directory, and ends with the weights of an uninterrupted run."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cluster.resume_checks import assert_same_run, cluster_env, train_uninterrupted
from tests.helpers import REPO
from tests.slurm_cluster import LocalSlurm

# 160 batches of at least 0.4 s in the job's first run: over a minute of training on any machine, so the 1-minute
# limit interrupts it; the requeued run is not paced and finishes at once. One process.
# The signal: slurmctld checks time limits every 30 s and sends a --signal=SIG@D warning at the first check that
# finds the job within D + 30 s of its limit (sbatch(1): "may be sent up to 60 seconds earlier"). With a 60 s limit
# and D = 30 that is any time from the job's start, before submitit has unpickled the job and installed its handler,
# and USR2 then kills the job (a CI failure). D = 10 puts the signal 20-50 s into each run: Python is up by then, and
# the next check, which would enforce the limit, comes 30 s after the signal, long after the requeue.
TRAINING = ("experiment=smoke", "trainer.deterministic=true", "trainer.max_epochs=40")
PACE = ("+callbacks.pace._target_=tests.cli.interrupt.Pace", "+callbacks.pace.seconds=0.4",
        "+callbacks.pace.first_run_only=true")


def _sweep_releasing_requeued_jobs(local_slurm: LocalSlurm, env: dict[str, str], args: list[str],
                                   timeout: float) -> tuple[subprocess.CompletedProcess, list[dict[str, str]]]:
    """Run the multirun to its end, starting each requeued job at once (Slurm holds one ~2 minutes otherwise)."""
    command = [sys.executable, str(REPO / "train.py"), *args]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + timeout
    try:
        while process.poll() is None:
            assert time.monotonic() < deadline, f"the sweep did not end within {timeout}s\n{local_slurm.log_tails()}"
            for job in local_slurm.jobs():
                if job["JobName"] == "train" and job["JobState"] == "PENDING" and job.get("Reason") == "BeginTime":
                    local_slurm.release(job["JobId"])
            time.sleep(1.0)
    finally:
        if process.poll() is None:
            process.kill()
    output = process.stdout.read() if process.stdout else ""
    jobs = [job for job in local_slurm.jobs() if job["JobName"] == "train"]
    return subprocess.CompletedProcess(command, process.returncode, output, ""), jobs


@pytest.mark.slow
def test_time_limited_job_is_requeued_and_resumes_exactly(local_slurm: LocalSlurm, tiny_data: Path, tmp_path: Path) -> None:
    env = cluster_env(local_slurm)
    training = [*TRAINING, f"data.root={tiny_data}"]
    train_uninterrupted(env, tmp_path / "uninterrupted", *training)

    sweep = tmp_path / "sweep"
    launcher = ["-m", "hydra/launcher=submitit_slurm", f"hydra.sweep.dir={sweep}",
                f"hydra.launcher.partition={local_slurm.partition}", "hydra.launcher.timeout_min=1",
                "hydra.launcher.signal_delay_s=10", "hydra.launcher.max_num_timeout=10"]
    result, jobs = _sweep_releasing_requeued_jobs(local_slurm, env, [*launcher, *training, *PACE], timeout=900)
    assert result.returncode == 0, result.stdout[-3000:]
    [job] = jobs
    assert job["JobState"] == "COMPLETED" and int(job["Restarts"]) >= 1, job  # interrupted at least once
    assert sorted(p.name for p in sweep.iterdir() if not p.name.startswith(".")) == ["0", "multirun.yaml"]

    log = (sweep / "0" / "train.log").read_text()
    assert "SIGUSR2 received" in log and "resumed at epoch" in log
    assert_same_run(sweep / "0", tmp_path / "uninterrupted", steps=40 * 4)  # 64 images, global batch 16
