"""Through Hydra's submitit_slurm launcher on a real (local) Slurm: a training with a 2-minute time limit is
signalled (USR2), checkpoints at the next batch boundary, is requeued by submitit, resumes in the same run
directory, and ends with the weights of an uninterrupted run."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cluster.resume_checks import Uninterrupted, assert_same_run, cluster_env
from tests.helpers import REPO
from tests.slurm_cluster import LocalSlurm

# When Slurm signals: slurmctld checks time limits every 30 s and sends a --signal=SIG@D warning at the first check
# that finds the job within D + 30 s of its limit L (sbatch(1): "may be sent up to 60 seconds earlier"). D = 30 s
# and L = 2 minutes put USR2 60-90 s into the run; the check that enforces the limit comes 60 s after the signal
# (the one 30 s after it is still short of 120 s): time for a batch, the checkpoint and the requeue. USR2 kills a job
# that has not yet installed submitit's handler (installed once submitit has unpickled the job, imports included),
# and on the 2-core machine with three CPU burners that start-up took up to ~33 s (USR2 came 28 s after submitit's
# first line and found the handler installed 7 s before): a 1-minute limit (USR2 20-50 s in with D = 10) is too
# close on a busy machine. The first run is paced (160 batches of at least 0.8 s: over two minutes of training), so
# the signal always finds it training; the rerun is not paced and finishes at once.
# The rerun gets a 30-minute limit when the harness releases it (LocalSlurm.release). With the first run's 1-minute
# limit, each rerun was signalled again at the first limit check 20 s or more after its start (20-30 s in, as reruns
# start right after a check), while on the busy machine its start-up alone took 22-28 s: reruns did a few steps each
# and were requeued again and again, and one got USR2 while still loading submitit's pickle and died of it (job
# FAILED, no result file), so the launcher's job.results() raised submitit's UncompletedJobError and the multirun
# exited 1 (reproduced: the CI failure). A rerun could also die of a USR2 during interpreter shutdown after writing
# its result (sweep status 0, job FAILED; seen), or the reruns could exhaust max_num_timeout.
TRAINING = ("experiment=smoke", "trainer.deterministic=true", "trainer.max_epochs=40")
PACE = (
    "+callbacks.pace._target_=tests.cli.interrupt.Pace",
    "+callbacks.pace.seconds=0.8",
    "+callbacks.pace.first_run_only=true",
)
RERUN_LIMIT_MIN = 30


def _sweep_releasing_requeued_jobs(
    local_slurm: LocalSlurm,
    env: dict[str, str],
    args: list[str],
    output: Path,
    timeout: float,
    each_second: Callable[[], None] = lambda: None,
) -> tuple[subprocess.CompletedProcess, list[dict[str, str]]]:
    """Run the multirun to its end (its stdout and stderr to ``output``), starting each requeued job at once (Slurm
    holds one ~2 minutes otherwise) with a time limit long enough not to be signalled again; ``each_second`` runs
    meanwhile."""
    command = [sys.executable, str(REPO / "train.py"), *args]
    with output.open("w") as sink:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    try:
        while process.poll() is None:
            assert time.monotonic() < deadline, f"the sweep did not end within {timeout}s\n{local_slurm.log_tails()}"
            try:
                for job in local_slurm.jobs():
                    held = job["JobState"] == "PENDING" and job.get("Reason") == "BeginTime"
                    if job["JobName"] == "train" and held:
                        local_slurm.release(job["JobId"], time_limit_min=RERUN_LIMIT_MIN)
            except (RuntimeError, subprocess.TimeoutExpired):
                pass  # slurmctld busy: ask again next time round
            each_second()
            time.sleep(1.0)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    jobs = [job for job in local_slurm.jobs() if job["JobName"] == "train"]
    return subprocess.CompletedProcess(command, process.returncode, output.read_text(), ""), jobs


@pytest.mark.slow
def test_time_limited_job_is_requeued_and_resumes_exactly(
    local_slurm: LocalSlurm, tiny_data: Path, tmp_path: Path
) -> None:
    env = cluster_env(local_slurm)
    training = [*TRAINING, f"data.root={tiny_data}"]
    reference = Uninterrupted(env, tmp_path / "uninterrupted", *training)

    sweep = tmp_path / "sweep"
    first_checkpoint = sweep / "0" / "checkpoints" / "last.ckpt"

    def start_reference_once_training() -> None:
        # during the paced first run, which mostly sleeps, once it is training (its start-up is not slowed down)
        if first_checkpoint.is_file():
            reference.start()

    launcher = [
        "-m",
        "hydra/launcher=submitit_slurm",
        f"hydra.sweep.dir={sweep}",
        f"hydra.launcher.partition={local_slurm.partition}",
        "hydra.launcher.timeout_min=2",
        "hydra.launcher.signal_delay_s=30",
        "hydra.launcher.max_num_timeout=3",
    ]
    try:
        result, jobs = _sweep_releasing_requeued_jobs(
            local_slurm,
            env,
            [*launcher, *training, *PACE],
            output=tmp_path / "sweep.out",
            timeout=900,
            each_second=start_reference_once_training,
        )
        assert result.returncode == 0, _sweep_failure(result.stdout, sweep)
        [job] = jobs
        # the sweep ends when the job has written its result; the job itself ends a moment later
        job = local_slurm.wait_for_state(job["JobId"], "COMPLETED", timeout=120)
        assert job["Restarts"] == "1", job  # signalled once (the rerun's longer limit is not reached)
        assert sorted(p.name for p in sweep.iterdir() if not p.name.startswith(".")) == ["0", "multirun.yaml"]

        log = (sweep / "0" / "train.log").read_text()
        assert "SIGUSR2 received" in log and "resumed at epoch" in log
        reference.wait()
        assert_same_run(sweep / "0", tmp_path / "uninterrupted", steps=40 * 4)  # 64 images, global batch 16
    finally:
        reference.stop()


def _sweep_failure(output: str, sweep: Path) -> str:
    """The sweep's error lines (submitit's UncompletedJobError or FailedJobError, Hydra's), its last lines, and the
    job's submitit log (every run of the job, with the signals it received)."""
    errors = [line for line in output.splitlines() if "Error" in line or "Exception" in line]
    logs = "\n".join(f"--- {log}\n{log.read_text()[-4000:]}" for log in sorted(sweep.glob(".submitit/*/*_log.out")))
    return "\n".join(["error lines:", *errors[:20], "--- output's end", output[-2000:], logs])
