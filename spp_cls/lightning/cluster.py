"""Who starts the processes of a run, and the Lightning plugins that follow from it.

- ``python train.py`` with several devices: Lightning starts the other DDP processes by re-running the
  command (with ``hydra.run.dir`` fixed), once per extra device.
- Slurm (``srun`` in an sbatch script, or Hydra's ``submitit_slurm`` launcher): Slurm starts one task per
  device and Lightning's ``SLURMEnvironment`` reads their ranks. Under submitit, submitit owns the requeue
  (USR2, then ``scontrol requeue``), so Lightning's own requeue on USR1 is switched off.
- Hydra's ``submitit_local`` launcher: submitit starts ``tasks_per_node`` processes on this machine;
  ``SubmititLocalEnvironment`` gives Lightning their ranks from submitit's job environment.

Re-running the command cannot work under submitit (its command is submitit's own) nor in a Hydra multirun
(each process would run the whole sweep), hence ``external_tasks`` for the start-up checks.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from typing import Any, Optional

import torch
from lightning_fabric.plugins.environments import ClusterEnvironment, SLURMEnvironment
from lightning_fabric.utilities.warnings import PossibleUserWarning

SUBMITIT_EXECUTOR = "SUBMITIT_EXECUTOR"  # set by submitit in its jobs: "slurm" or "local"

# Lightning's rank_zero_info logs through one of these (whichever Lightning package was imported last sets it)
LIGHTNING_INFO_LOGGERS = ("lightning_fabric.utilities.rank_zero", "pytorch_lightning.utilities.rank_zero",
                          "lightning.fabric.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero")
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


def external_rank() -> int:
    """This process's global rank when Slurm or submitit started it (0 otherwise, also for rank 0)."""
    if SLURMEnvironment.detect():
        return int(os.environ["SLURM_PROCID"])
    if _submitit_executor() == "local":
        return int(os.environ["SUBMITIT_LOCAL_GLOBALID"])
    return 0


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
