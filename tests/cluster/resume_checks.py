"""Shared by the requeue tests on the local Slurm: an uninterrupted reference run and the comparison with it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from spp_cls.checkpointing import load_safe
from tests.helpers import REPO
from tests.slurm_cluster import LocalSlurm


def cluster_env(local_slurm: LocalSlurm) -> dict[str, str]:
    """The test cluster's environment; one thread per process everywhere, so float results do not depend on how
    many CPUs a task was given."""
    return dict(local_slurm.env(), OMP_NUM_THREADS="1", HYDRA_FULL_ERROR="1", PYTHONWARNINGS="ignore")


def train_uninterrupted(env: dict[str, str], run_dir: Path, *overrides: str) -> None:
    """``python train.py`` here, outside Slurm (DDP processes, if any, started by Lightning)."""
    done = subprocess.run([sys.executable, str(REPO / "train.py"), *overrides, f"hydra.run.dir={run_dir}"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]


def assert_same_run(run: Path, reference: Path, steps: int) -> None:
    """The same final weights (bit for bit), step count and metrics.json as the reference run."""
    ours, theirs = load_safe(run / "checkpoints" / "last.ckpt"), load_safe(reference / "checkpoints" / "last.ckpt")
    assert ours["global_step"] == theirs["global_step"] == steps
    for key, tensor in theirs["state_dict"].items():
        assert torch.equal(ours["state_dict"][key], tensor), key
    metrics = [json.loads((d / "metrics.json").read_text()) for d in (run, reference)]
    for m in metrics:
        m.pop("last_checkpoint"), m.pop("best_checkpoint")
    assert metrics[0] == metrics[1]
