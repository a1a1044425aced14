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
    done = subprocess.run(
        [sys.executable, str(REPO / "train.py"), *overrides, f"hydra.run.dir={run_dir}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]


class Uninterrupted:
    """``train_uninterrupted`` in the background: ``start`` it (once), then ``wait`` for its end."""

    def __init__(self, env: dict[str, str], run_dir: Path, *overrides: str) -> None:
        self.command = [sys.executable, str(REPO / "train.py"), *overrides, f"hydra.run.dir={run_dir}"]
        self.env, self.log = env, run_dir.with_name(run_dir.name + ".out")
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        if self.process is None:
            with self.log.open("w") as sink:
                self.process = subprocess.Popen(
                    self.command, cwd=REPO, env=self.env, stdout=sink, stderr=subprocess.STDOUT
                )

    def wait(self, timeout: float = 900) -> None:
        """Start it if not yet started; wait for it to end, and check that it succeeded (killed at the timeout)."""
        self.start()
        assert self.process is not None
        try:
            self.process.wait(timeout)
        finally:
            self.stop()
        assert self.process.returncode == 0, self.log.read_text()[-3000:]

    def stop(self) -> None:
        """Kill it if it still runs (a test that failed before waiting for it)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def assert_same_run(run: Path, reference: Path, steps: int) -> None:
    """The same final weights (bit for bit), step count and metrics.json as the reference run."""
    ours, theirs = load_safe(run / "checkpoints" / "last.ckpt"), load_safe(reference / "checkpoints" / "last.ckpt")
    assert ours["global_step"] == theirs["global_step"] == steps
    for key, tensor in theirs["state_dict"].items():
        assert torch.equal(ours["state_dict"][key], tensor), key
    metrics = [json.loads((d / "metrics.json").read_text()) for d in (run, reference)]
    for m in metrics:
        m.pop("last_checkpoint"), m.pop("best_checkpoint"), m.pop("evaluated_checkpoint")  # paths of each run
    assert metrics[0] == metrics[1]
