"""A real one-node Slurm on localhost for tests (scripts/slurm/start_local_slurm.sh), as a session fixture.

Use it from a test package by re-exporting the fixture in that package's conftest.py
(``from tests.slurm_cluster import local_slurm  # noqa: F401``), as tests/cluster/conftest.py does.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import REPO

SCRIPTS = REPO / "scripts" / "slurm"
BINARIES = ("munged", "mungekey", "slurmctld", "slurmd", "sinfo", "sbatch", "scontrol", "sacct", "srun")
FINAL_STATES = frozenset(
    {"COMPLETED", "FAILED", "TIMEOUT", "CANCELLED", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "PREEMPTED"}
)
# "Key=value" pairs of `scontrol show job -o`; keys look like JobState, AllocNode:Sid or CPUs/Task.
_FIELD = re.compile(r"([A-Za-z][\w:/]*)=(.*?)(?= [A-Za-z][\w:/]*=|$)")


def _fields(line: str) -> dict[str, str]:
    return dict(_FIELD.findall(line.strip()))


@dataclass(frozen=True)
class LocalSlurm:
    """The running test cluster: submit jobs, follow them through ``scontrol`` (no accounting here), requeue them."""

    directory: Path
    node: str
    partition: str = "debug"

    @property
    def conf(self) -> Path:
        return self.directory / "slurm.conf"

    def env(self) -> dict[str, str]:
        """The environment Slurm commands and submitit need: SLURM_CONF, and scripts/slurm/sacct first on PATH."""
        shim, path = str(self.directory / "bin"), os.environ["PATH"]
        if path.split(os.pathsep)[0] != shim:
            path = f"{shim}{os.pathsep}{path}"
        return dict(os.environ, SLURM_CONF=str(self.conf), PATH=path)

    def log_tails(self, lines: int = 20) -> str:
        """The last lines of the daemons' logs, for failure messages."""
        logs = sorted((self.directory / "log").glob("*.log"))
        return "\n".join(f"--- {log.name}\n" + "\n".join(log.read_text().splitlines()[-lines:]) for log in logs)

    def run(self, *command: str) -> str:
        """Run a Slurm command against this cluster; its stdout (raises with stderr on failure)."""
        done = subprocess.run(command, env=self.env(), capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def submit(self, script: Path, *sbatch_args: str, cwd: Path | None = None) -> str:
        """``sbatch`` a script (options in ``sbatch_args`` come first) from ``cwd`` or its folder; the job id."""
        done = subprocess.run(
            ["sbatch", "--parsable", *sbatch_args, str(script)],
            cwd=cwd or script.parent,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise RuntimeError(f"sbatch {script} failed: {done.stderr.strip()}")
        return done.stdout.strip().split(";")[0]

    def jobs(self) -> list[dict[str, str]]:
        """Every job slurmctld knows (finished ones stay for MinJobAge, an hour), as ``job_info`` gives them."""
        lines = self.run("scontrol", "show", "job", "-o").splitlines()
        return [_fields(line) for line in lines if line.startswith("JobId=")]

    def job_info(self, job_id: str) -> dict[str, str]:
        """The job's fields from ``scontrol show job`` (JobState, Reason, Restarts, RunTime, TimeLimit, StdOut, ...)."""
        return _fields(self.run("scontrol", "show", "job", "-o", job_id))

    def wait_for(
        self, job_id: str, condition: Callable[[dict[str, str]], bool], what: str, timeout: float
    ) -> dict[str, str]:
        """Poll ``job_info`` until ``condition`` holds; that info. Fails (naming ``what``) at the timeout, or
        as soon as the job ends without it."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.job_info(job_id)
            if condition(info):
                return info
            if info["JobState"] in FINAL_STATES or time.monotonic() > deadline:
                raise AssertionError(
                    f"job {job_id} is {info['JobState']} ({info.get('Reason')}, {info.get('Restarts')} restarts), "
                    f"waited {timeout}s for {what}; output {info.get('StdOut')}\n{self.log_tails()}"
                )
            time.sleep(0.5)

    def wait_for_state(self, job_id: str, *states: str, timeout: float = 120.0) -> dict[str, str]:
        """Wait until the job's state is one of ``states`` (COMPLETED, RUNNING, PENDING, TIMEOUT, ...)."""
        wanted = {state.upper() for state in states}
        return self.wait_for(job_id, lambda info: info["JobState"] in wanted, f"state {sorted(wanted)}", timeout)

    def wait_for_restart(self, job_id: str, count: int = 1, timeout: float = 120.0) -> dict[str, str]:
        """Wait until the job was requeued ``count`` times (Slurm then shows it PENDING, Reason=BeginTime)."""
        return self.wait_for(job_id, lambda info: int(info["Restarts"]) >= count, f"{count} restarts", timeout)

    def requeue(self, job_id: str) -> None:
        """Requeue a running job, as submitit does on its time-limit signal."""
        self.run("scontrol", "requeue", job_id)

    def release(self, job_id: str, time_limit_min: int | None = None) -> None:
        """Start a requeued job now: Slurm holds it about two minutes (its begin time) otherwise. With
        ``time_limit_min``, its rerun gets that time limit (and its ``--signal`` warning comes that much later).

        Slurm 22.05 spells this ``scontrol update jobid=<id> StartTime=now`` (it refuses ``BeginTime=``).
        """
        limit = [f"TimeLimit={time_limit_min}"] if time_limit_min is not None else []
        self.run("scontrol", "update", f"jobid={job_id}", *limit, "StartTime=now")

    def cancel(self, job_id: str) -> None:
        """``scancel`` the job."""
        self.run("scancel", job_id)


def _free_ports(count: int) -> list[int]:
    """Ports free right now (held together, so distinct): each session's cluster gets its own."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def skip_reason() -> str:
    """Why no local Slurm can run here, or '' when it can."""
    if os.geteuid() != 0:
        return "needs root (slurmd runs jobs as their user)"
    if missing := [b for b in BINARIES if shutil.which(b) is None]:
        return f"missing {' '.join(missing)} (apt-get install slurm-wlm munge)"
    return ""


@pytest.fixture(scope="session")
def local_slurm() -> Iterator[LocalSlurm]:
    """A private one-node Slurm for this session (fresh state, free ports), stopped and removed at the end.

    While it runs, SLURM_CONF and PATH (with scripts/slurm/sacct) point at it in os.environ, so train.py with the
    submitit launcher, submitit itself and every subprocess reach this cluster and no other.
    """
    if reason := skip_reason():
        if os.environ.get("SPP_REQUIRE_SLURM") == "1":  # set by .ci/run once it installed Slurm: no silent skip
            pytest.fail(f"local Slurm test cluster required (SPP_REQUIRE_SLURM=1) but {reason}")
        pytest.skip(f"local Slurm test cluster: {reason}")
    directory = Path(tempfile.mkdtemp(prefix="spp-slurm-"))  # short: munged's socket path must fit in 108 bytes
    ctld_port, d_port = _free_ports(2)
    env = dict(os.environ, SPP_SLURM_CTLD_PORT=str(ctld_port), SPP_SLURM_D_PORT=str(d_port))
    start = ["bash", str(SCRIPTS / "start_local_slurm.sh"), str(directory)]
    started = subprocess.run(start, env=env, capture_output=True, text=True, timeout=180)
    cluster = LocalSlurm(directory=directory, node=socket.gethostname().split(".")[0])
    try:
        if started.returncode != 0:
            raise RuntimeError(f"start_local_slurm.sh failed: {started.stdout}{started.stderr}\n{cluster.log_tails()}")
        with pytest.MonkeyPatch.context() as patch:
            for key in ("SLURM_CONF", "PATH"):
                patch.setenv(key, cluster.env()[key])
            yield cluster
    finally:
        stop = ["bash", str(SCRIPTS / "stop_local_slurm.sh"), str(directory), "--purge"]
        subprocess.run(stop, capture_output=True, timeout=120)
