"""Who starts the processes of a run, and the Lightning plugins that follow from it.

- ``python train.py`` with several devices: Lightning starts the other DDP processes by re-running the
  command (with ``hydra.run.dir`` fixed), once per extra device.
- Slurm (``srun`` in an sbatch script, or Hydra's ``submitit_slurm`` launcher): Slurm starts one task per
  device and Lightning's ``SLURMEnvironment`` reads their ranks. Under submitit, submitit owns the requeue
  (USR2, then ``scontrol requeue``), so Lightning's own requeue on USR1 is switched off.
- Hydra's ``submitit_local`` launcher: submitit starts ``tasks_per_node`` processes on this machine;
  ``SubmititLocalEnvironment`` gives Lightning their ranks from submitit's job environment, and the Hydra
  callback ``LocalGpuSets`` gives each job of a sweep its own GPUs.

Re-running the command cannot work under submitit (its command is submitit's own) nor in a Hydra multirun
(each process would run the whole sweep), hence ``external_tasks`` for the start-up checks.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import re
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from hydra.experimental.callback import Callback
from lightning_fabric.plugins.environments import ClusterEnvironment, SLURMEnvironment
from lightning_fabric.utilities.warnings import PossibleUserWarning
from omegaconf import DictConfig

SUBMITIT_EXECUTOR = "SUBMITIT_EXECUTOR"  # set by submitit in its jobs: "slurm" or "local"

# Lightning's rank_zero_info logs through one of these (whichever Lightning package was imported last sets it)
LIGHTNING_INFO_LOGGERS = (
    "lightning_fabric.utilities.rank_zero",
    "pytorch_lightning.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning.pytorch.utilities.rank_zero",
)
# SLURMEnvironment.detect()'s warning wherever an srun binary exists and this process was not started by srun; here
# the processes of a Slurm run are started by srun (sbatch script, submitit) and any other start is deliberate
SRUN_HINT = "The `srun` command is available on your system but is not used"


class _NoAdverts(logging.Filter):
    """Drops Lightning's advertising lines ("💡 Tip: For seamless cloud uploads and versioning, try installing
    [litmodels]...", "... [litlogger] ..."), which every Trainer logs at INFO; every other record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return re.match(r"\W*Tip: ", record.getMessage()) is None


def quiet_lightning_adverts() -> None:
    """Silence Lightning's tips for its paid services and its srun hint, and nothing else (idempotent): the tips
    come from ``pytorch_lightning.trainer.connectors`` (``logger_connector``: litlogger; ``callback_connector``:
    litmodels) through ``rank_zero_info``, the hint from ``lightning_fabric.plugins.environments.slurm``
    (``SLURMEnvironment._validate_srun_used``) as a ``PossibleUserWarning``."""
    for name in LIGHTNING_INFO_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NoAdverts) for f in logger.filters):
            logger.addFilter(_NoAdverts())
    warnings.filterwarnings("ignore", message=re.escape(SRUN_HINT), category=PossibleUserWarning)


# on import: every entry point (train.py, evaluate.py, the benchmarks) imports this module before its first Trainer
# and before its first SLURMEnvironment.detect() (external_tasks, called by the config checks)
quiet_lightning_adverts()


def _submitit_executor() -> str:
    return os.environ.get(SUBMITIT_EXECUTOR, "")


def external_tasks() -> Optional[tuple[int, int]]:
    """``(processes per node, nodes)`` when Slurm or submitit started this run's processes, else None."""
    if SLURMEnvironment.detect():
        nodes = int(os.environ.get("SLURM_JOB_NUM_NODES", os.environ.get("SLURM_NNODES", "1")))
        per_node = re.match(r"\d+", os.environ.get("SLURM_NTASKS_PER_NODE", ""))
        return (int(per_node.group()) if per_node else int(os.environ["SLURM_NTASKS"]) // nodes), nodes
    if _submitit_executor() == "local":
        return int(os.environ["SUBMITIT_LOCAL_NTASKS"]), int(os.environ["SUBMITIT_LOCAL_JOB_NUM_NODES"])
    return None


def process_rank(devices_per_node: Optional[int] = None) -> int:
    """This process's global rank as its launcher set it, before Lightning runs (0 for a process started alone).

    Slurm and submitit give it; torchrun sets ``RANK``; Lightning's own DDP processes and processes started by
    hand on several nodes (Lightning's environment variables) have ``NODE_RANK`` and ``LOCAL_RANK``, from which it
    is ``NODE_RANK x devices per node + LOCAL_RANK``."""
    if SLURMEnvironment.detect():
        return int(os.environ["SLURM_PROCID"])
    if _submitit_executor() == "local":
        return int(os.environ["SUBMITIT_LOCAL_GLOBALID"])
    if "RANK" in os.environ:
        return int(os.environ["RANK"])
    node, local = int(os.environ.get("NODE_RANK", 0)), int(os.environ.get("LOCAL_RANK", 0))
    if node and not devices_per_node:  # trainer.devices=-1 / auto: every GPU of the node
        devices_per_node = torch.cuda.device_count() or 1
    return node * (devices_per_node or 1) + local


class SubmititLocalEnvironment(ClusterEnvironment):
    """The processes of a ``submitit_local`` job: ranks from submitit, the main process on this machine."""

    def __init__(self) -> None:
        import submitit  # a job of submitit's: it is installed

        self._job = submitit.JobEnvironment()

    @property
    def creates_processes_externally(self) -> bool:
        return True

    @property
    def main_address(self) -> str:
        return "127.0.0.1"

    @property
    def main_port(self) -> int:
        return 20000 + int(self._job.job_id) % 20000  # the job id is the submitting process id: same for all tasks

    @staticmethod
    def detect() -> bool:
        return _submitit_executor() == "local"

    def world_size(self) -> int:
        return self._job.num_tasks

    def set_world_size(self, size: int) -> None:
        pass  # fixed by submitit

    def global_rank(self) -> int:
        return self._job.global_rank

    def set_global_rank(self, rank: int) -> None:
        pass  # fixed by submitit

    def local_rank(self) -> int:
        return self._job.local_rank

    def node_rank(self) -> int:
        return self._job.node


def processes_per_node(devices: Any) -> int:
    """Training processes on this node: one per device (``trainer.devices``; -1 or auto: every GPU)."""
    tasks = external_tasks()
    if tasks is not None:
        return tasks[0]
    if isinstance(devices, int) and devices >= 1:
        return devices
    return max(1, torch.cuda.device_count())


def loader_workers(setting: Any, devices: Any) -> int:
    """``data.num_workers``: a number, or ``auto``: the CPU cores this process may use, shared with the other
    training processes of the node, less one for the training process itself (at least 1).

    The cores are this process's CPU set (Slurm's binding, a cgroup, taskset); when that set is the whole
    machine, the node's training processes share it.
    """
    if setting != "auto":
        return int(setting)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if external_tasks() is None or cores >= (os.cpu_count() or cores):
        cores //= processes_per_node(devices)
    return max(1, cores - 1)


def cluster_plugins() -> list[Any]:
    """The cluster environment a run's Trainer needs (none when Lightning detects it or starts processes)."""
    executor = _submitit_executor()
    if executor == "slurm" and SLURMEnvironment.detect():
        return [SLURMEnvironment(auto_requeue=False)]
    if executor == "local":
        return [SubmititLocalEnvironment()]
    return []


# ----------------------------------------------------------------------------- submitit_local: GPUs per job
GPU_LIST = "SPP_CLS_GPUS"  # the GPUs the jobs of a submitit_local sweep share, e.g. "4,5,6,7" (default: all)
_held_locks: list[int] = []  # open lock files of the GPU sets this process holds (released at exit)


def machine_gpus() -> list[str]:
    """The GPUs a submitit_local sweep may use: ``SPP_CLS_GPUS``, else every GPU nvidia-smi lists, else the
    ``CUDA_VISIBLE_DEVICES`` submitit set (0..n-1: then the jobs take turns on those)."""
    if listed := os.environ.get(GPU_LIST, "").strip():
        return [gpu.strip() for gpu in listed.split(",") if gpu.strip()]
    import subprocess

    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        return [line.strip() for line in out.splitlines() if line.strip()]
    except (OSError, subprocess.SubprocessError):
        return [gpu for gpu in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if gpu]


def gpu_sets(gpus: list[str], per_job: int) -> list[list[str]]:
    """Disjoint sets of ``per_job`` GPUs, in order (0..n-1, n..2n-1, ...); leftover GPUs form no set."""
    if per_job < 1 or len(gpus) < per_job:
        raise ValueError(
            f"a job needs {per_job} GPUs; the sweep has {len(gpus)}: {','.join(gpus) or 'none'} "
            f"(set {GPU_LIST} or trainer.devices)"
        )
    return [gpus[start : start + per_job] for start in range(0, len(gpus) - per_job + 1, per_job)]


def claim_gpu_set(
    sets: list[list[str]], lock_dir: Path, poll_s: float = 5.0, waiting: Optional[Callable[[], None]] = None
) -> tuple[list[str], int]:
    """The first free set and the open lock file that holds it (``flock``: until the file is closed, at the latest
    when the process exits); waits for a set when all are taken (``waiting`` is called once then)."""
    import fcntl

    lock_dir.mkdir(parents=True, exist_ok=True)
    said = False
    while True:
        for gpus in sets:
            fd = os.open(lock_dir / f"gpus-{'-'.join(gpus)}.lock", os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return gpus, fd
        if not said and waiting is not None:
            waiting()
        said = True
        time.sleep(poll_s)


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    temporary.replace(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_for_rank0(record: Path, rank0: Path, failure: Path, start_timeout_s: float, poll_s: float = 0.2) -> list[str]:
    """The GPUs rank 0 noted in ``record``, waiting for it as long as it lives: rank 0 may wait for a free set for
    hours, but a rank 0 that failed (``failure`` says why), exited without a note, or never started within
    ``start_timeout_s`` (no ``rank0`` file with its PID) must not leave the other ranks waiting forever."""
    started = time.monotonic()
    while True:
        if record.is_file():
            return record.read_text().split(",")
        if failure.is_file():
            raise RuntimeError(f"rank 0 of this job could not take its GPUs: {failure.read_text()}")
        try:
            pid = int(rank0.read_text())
        except (OSError, ValueError):
            pid = None
        if pid is not None and not _alive(pid) and not record.is_file():
            raise RuntimeError(f"rank 0 of this job (PID {pid}) exited before it noted the job's GPUs in {record}")
        if pid is None and time.monotonic() - started > start_timeout_s:
            raise RuntimeError(f"rank 0 of this job did not start within {start_timeout_s:.0f} s (no {rank0})")
        time.sleep(poll_s)


class LocalGpuSets(Callback):
    """Hydra callback of the ``submitit_local`` launcher: every job of a sweep on GPUs of its own.

    submitit starts all jobs at once with the same ``CUDA_VISIBLE_DEVICES`` (0..n-1); its ``visible_gpus`` is one
    list for every job and the Hydra plugin cannot pass it. Here, in each job's processes before the training code
    runs: rank 0 takes the first free set of n of the machine's GPUs (``SPP_CLS_GPUS`` or all; a file lock held
    until it exits, so also against this user's other sweeps) and writes it down for the job's other ranks; every
    rank then sets ``CUDA_VISIBLE_DEVICES`` to it. Jobs beyond the free sets wait for one, so they run one after
    another. CPU jobs (``gpus_per_node`` null) and other launchers are left alone.
    """

    def __init__(self, lock_dir: Optional[str] = None, poll_s: float = 5.0, start_timeout_s: float = 600.0) -> None:
        base = os.environ.get("TMPDIR") or "/tmp"
        self.lock_dir = Path(lock_dir) if lock_dir else Path(base) / f"spp-cls-gpus-{os.getuid()}"
        self.poll_s = poll_s
        self.start_timeout_s = start_timeout_s  # how long the other ranks wait for rank 0 to start

    def _claim(self, per_job: int, log: logging.Logger) -> list[str]:
        """Rank 0: the first free set of ``per_job`` GPUs, its lock held for the job's life."""
        sets = gpu_sets(machine_gpus(), per_job)
        gpus, lock = claim_gpu_set(
            sets,
            self.lock_dir,
            self.poll_s,
            waiting=lambda: log.info(
                "waiting for %d free GPUs (%d sets of %s are in use)",
                per_job,
                len(sets),
                ",".join(g for s in sets for g in s),
            ),
        )
        _held_locks.append(lock)
        return gpus

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        per_job = config.hydra.launcher.get("gpus_per_node")
        if _submitit_executor() != "local" or not per_job:
            return
        log = logging.getLogger(__name__)
        job = os.environ["SUBMITIT_LOCAL_JOB_ID"]
        run_dir = str(config.hydra.runtime.output_dir)
        key = f"{job}-{hashlib.sha1(run_dir.encode()).hexdigest()[:12]}"
        record = self.lock_dir / f"job-{key}"
        rank0, failure = self.lock_dir / f"rank0-{key}.pid", self.lock_dir / f"rank0-{key}.error"
        if int(os.environ.get("SUBMITIT_LOCAL_GLOBALID", "0")) == 0:
            self.lock_dir.mkdir(parents=True, exist_ok=True)
            failure.unlink(missing_ok=True)
            _write_atomically(rank0, str(os.getpid()))
            atexit.register(lambda: rank0.unlink(missing_ok=True))
            try:
                gpus = self._claim(int(per_job), log)
            except BaseException as error:  # the other ranks wait for rank 0: tell them, then fail
                _write_atomically(failure, f"{type(error).__name__}: {error}")
                raise
            _write_atomically(record, ",".join(gpus))  # the other ranks never read half of it
            atexit.register(lambda: record.unlink(missing_ok=True))
        else:
            gpus = wait_for_rank0(record, rank0, failure, self.start_timeout_s)
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
        log.info("GPUs of this job: %s (CUDA_VISIBLE_DEVICES)", ",".join(gpus))
