"""The local Slurm test cluster really schedules, signals and requeues jobs, and submitit can drive it."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import submitit

from tests import slurm_cluster
from tests.slurm_cluster import LocalSlurm

HELLO = """echo "batch $SLURM_JOB_ID on $SLURMD_NODENAME"
srun bash -c 'echo "step $SLURM_STEP_ID"'"""
# The first run waits to be requeued; the rerun ends at once.
REQUEUE = """echo "run $SLURM_JOB_ID restart=${SLURM_RESTART_COUNT:-0}"
[ "${SLURM_RESTART_COUNT:-0}" = 0 ] && sleep 300
exit 0"""
TRAP_USR2 = """start=$(date +%s)
trap 'echo "USR2 after $(( $(date +%s) - start ))s"; exit 0' USR2
while true; do sleep 1; done"""


def _script(path: Path, body: str, *sbatch_options: str) -> Path:
    options = (f"--output={path.with_suffix('.out')}", "--open-mode=append", *sbatch_options)
    path.write_text("#!/bin/bash\n" + "".join(f"#SBATCH {o}\n" for o in options) + body + "\n")
    return path


def _output(info: dict[str, str]) -> str:
    """The job's output so far ('' before its first line: a job can be RUNNING before its script starts)."""
    path = Path(info["StdOut"])
    return path.read_text() if path.exists() else ""


def _wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.5)


def test_skip_reason_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "root" in slurm_cluster.skip_reason()
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(slurm_cluster.shutil, "which", lambda name: None if name in ("munged", "slurmd") else name)
    assert slurm_cluster.skip_reason() == "missing munged slurmd (apt-get install slurm-wlm munge)"


def test_batch_job_runs_a_step_and_writes_its_output(local_slurm: LocalSlurm, tmp_path: Path) -> None:
    job = local_slurm.submit(_script(tmp_path / "hello.sh", HELLO))
    info = local_slurm.wait_for_state(job, "COMPLETED", timeout=60)
    assert info["ExitCode"] == "0:0"
    assert _output(info).splitlines() == [f"batch {job} on {local_slurm.node}", "step 0"]
    [listed] = [known for known in local_slurm.jobs() if known["JobId"] == job]
    assert (listed["JobState"], listed["StdOut"]) == ("COMPLETED", info["StdOut"])


def test_requeued_job_reruns_with_its_id_once_released(local_slurm: LocalSlurm, tmp_path: Path) -> None:
    job = local_slurm.submit(_script(tmp_path / "requeue.sh", REQUEUE))
    info = local_slurm.wait_for_state(job, "RUNNING", timeout=60)
    _wait_until(lambda: "restart=0" in _output(info), 30, "the first run's output")
    local_slurm.requeue(job)
    local_slurm.wait_for_restart(job, 1, timeout=60)
    held = local_slurm.wait_for_state(job, "PENDING", timeout=60)
    assert held["Reason"] == "BeginTime"  # Slurm holds a requeued job; unreleased, it would wait ~2 minutes
    local_slurm.release(job)
    done = local_slurm.wait_for_state(job, "COMPLETED", timeout=60)
    assert re.findall(r"^run (\d+) restart=(\d+)$", _output(done), re.M) == [(job, "0"), (job, "1")]


@pytest.mark.slow
def test_time_limit_signal_arrives_before_the_limit(local_slurm: LocalSlurm, tmp_path: Path) -> None:
    # As submitit asks: USR2 to the job's steps (not B:, the batch shell) some seconds before the 1-minute limit.
    # Slurm checks limits every 30 s and signals up to that much early, so this job ends within ~30 s.
    step = tmp_path / "step.sh"
    step.write_text(TRAP_USR2 + "\n")
    job = local_slurm.submit(_script(tmp_path / "signal.sh", f"srun bash {step}", "--time=1", "--signal=USR2@30"))
    info = local_slurm.wait_for_state(job, "COMPLETED", timeout=90)
    assert info["TimeLimit"] == "00:01:00"
    seconds = re.search(r"^USR2 after (\d+)s$", _output(info), re.M)
    assert seconds is not None, _output(info)
    assert int(seconds.group(1)) < 60


def _slurm_executor(local_slurm: LocalSlurm, folder: Path) -> submitit.AutoExecutor:
    executor = submitit.AutoExecutor(folder=folder / "%j")
    assert executor.cluster == "slurm"
    executor.update_parameters(slurm_partition=local_slurm.partition, timeout_min=1)
    return executor


def test_submitit_runs_a_function_and_returns_its_result(local_slurm: LocalSlurm, tmp_path: Path) -> None:
    def where(x: int) -> tuple[int, str]:
        return 2 * x, os.environ["SLURM_JOB_ID"]

    job = _slurm_executor(local_slurm, tmp_path).submit(where, 21)
    _wait_until(lambda: job.done(force_check=True), 60, f"submitit job {job.job_id}")
    assert job.result() == (42, job.job_id)
    # The result file comes first; then sacct (the scontrol-backed one) reports the end, where it used to say UNKNOWN.
    _wait_until(lambda: job.get_info(mode="force").get("State") == "COMPLETED", 30, "sacct to report COMPLETED")


def test_submitit_sees_array_tasks_that_slurm_ended(local_slurm: LocalSlurm, tmp_path: Path) -> None:
    # Array tasks, as Hydra's submitit launcher submits a sweep. With no result file, only sacct tells submitit
    # that a task is over; without an answer it would wait forever.
    jobs = _slurm_executor(local_slurm, tmp_path).map_array(time.sleep, [300, 300])
    array_id = jobs[0].job_id.split("_")[0]
    assert [job.job_id for job in jobs] == [f"{array_id}_0", f"{array_id}_1"]
    for job in jobs:
        local_slurm.wait_for_state(job.job_id, "RUNNING", timeout=60)
        assert job.get_info(mode="force")["State"] == "RUNNING"
    local_slurm.cancel(array_id)
    for job in jobs:
        _wait_until(lambda job=job: job.done(force_check=True), 60, f"submitit to see job {job.job_id} cancelled")
        assert job.get_info(mode="force")["State"] == "CANCELLED"
        assert not job.paths.result_pickle.exists()  # done on sacct's word alone
