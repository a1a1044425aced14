"""DDP on 2 CPU processes (gloo): the same result as one process with the same global batch, and Hydra sweeps:
through submitit_local one process per device per job, and a clear refusal of DDP in a basic-launcher multirun.
Exact resume of 2 processes killed mid-epoch: tests/cli/test_multinode.py (two emulated nodes, compared with this
module's reference run, ``ddp_run`` in conftest.py)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch

from spp_cls.checkpointing import load_safe
from tests.helpers import run_script

# 3 epochs of 4 steps of 16 images (8 per process); no dropout: one process and two draw different masks
RUN = (
    "experiment=smoke",
    "trainer.deterministic=true",
    "trainer.max_epochs=3",
    "model.dropout=0",
    "callbacks.checkpoint.every_minutes=1e-9",
)
DDP = ("trainer.devices=2", "trainer.strategy=ddp")
TOLERANCE = 1e-6  # measured: weights within 1.5e-8 of one process after 12 steps (summation order only)


def train(data: Path, run_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    return run_script("train.py", *RUN, f"data.root={data}", f"hydra.run.dir={run_dir}", *extra)


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_safe(run_dir / "checkpoints" / "last.ckpt")["state_dict"]


@pytest.mark.slow
def test_two_processes_match_one_with_the_same_global_batch(tiny_data: Path, ddp_run: Path, tmp_path: Path) -> None:
    single = train(tiny_data, tmp_path)
    assert single.returncode == 0, single.stderr[-3000:]
    assert (ddp_run / "train_rank1.log").is_file()  # Lightning started the second process
    assert not (ddp_run / "train_ddp_process_1.log").exists()  # the empty file Hydra opened for it is gone
    ours, theirs = weights(ddp_run), weights(tmp_path)
    for key, tensor in theirs.items():
        assert torch.allclose(ours[key], tensor, rtol=0, atol=TOLERANCE), (key, (ours[key] - tensor).abs().max())
    metrics = [json.loads((d / "metrics.json").read_text()) for d in (ddp_run, tmp_path)]
    assert metrics[0]["global_step"] == metrics[1]["global_step"] == 12
    for key in ("val/loss", "val/top1_err", "val/top5_err", "val/images"):
        assert metrics[0][key] == pytest.approx(metrics[1][key], abs=1e-5), key


def test_a_basic_multirun_refuses_ddp_and_names_the_way(tmp_path: Path) -> None:
    result = run_script("train.py", "-m", "experiment=smoke", *DDP, f"hydra.sweep.dir={tmp_path}", "seed=1,2")
    assert result.returncode == 2
    assert "hydra/launcher=submitit_local" in result.stderr and "re-running the whole command" in result.stderr
    assert not list(tmp_path.glob("*/checkpoints"))


@pytest.mark.slow
def test_a_submitit_local_sweep_runs_each_job_on_two_processes(tiny_data: Path, tmp_path: Path) -> None:
    result = run_script(
        "train.py",
        "-m",
        "hydra/launcher=submitit_local",
        f"hydra.sweep.dir={tmp_path}",
        "experiment=smoke",
        f"data.root={tiny_data}",
        *DDP,
        "model.spp=true,false",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["0", "1", "multirun.yaml"]
    for job in ("0", "1"):
        metrics = json.loads((tmp_path / job / "metrics.json").read_text())
        assert metrics["global_step"] == 4 and metrics["val/images"] == 32  # 64 images at a global batch of 16
        assert (tmp_path / job / "train_rank1.log").is_file()  # the second process, started by submitit
    logs = "".join(p.read_text() for p in tmp_path.glob(".submitit/*/*_log.out"))
    assert logs.count("MEMBER: 1/2") == 2 and logs.count("MEMBER: 2/2") == 2
