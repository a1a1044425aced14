"""Exact resume of a timm backbone run (train.py in a subprocess, killed with SIGKILL mid-epoch, resumed with
``ckpt_path=auto``): the weights (BatchNorm statistics included), momenta and metrics of an uninterrupted run, as
tests/cli/test_resume.py checks for the paper's networks."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch

from spp_cls.checkpointing import load_safe
from tests.cli.test_resume import resume_point, train

BACKBONE = ("model=timm", "model.backbone=resnet18", "trainer.max_epochs=2")


@pytest.mark.slow
def test_a_killed_timm_run_resumes_exactly(tiny_data: Path, tmp_path: Path) -> None:
    uninterrupted = train(tiny_data, tmp_path / "uninterrupted", *BACKBONE)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]
    run = tmp_path / "run"
    kill = ("+callbacks.kill._target_=tests.cli.interrupt.KillAt", "+callbacks.kill.step=6")  # mid-epoch 2
    assert train(tiny_data, run, *BACKBONE, *kill).returncode == -signal.SIGKILL
    assert resume_point(run) == (1, 6)
    final = train(tiny_data, run, *BACKBONE)
    assert final.returncode == 0, final.stderr[-3000:]
    ours, theirs = (load_safe(d / "checkpoints" / "last.ckpt") for d in (run, tmp_path / "uninterrupted"))
    assert ours["global_step"] == theirs["global_step"] == 8
    assert any("running_mean" in key for key in theirs["state_dict"])
    for key, tensor in theirs["state_dict"].items():
        assert torch.equal(ours["state_dict"][key], tensor), key
    momenta = zip(ours["optimizer_states"][0]["state"].values(), theirs["optimizer_states"][0]["state"].values())
    assert all(torch.equal(a["momentum_buffer"], b["momentum_buffer"]) for a, b in momenta)
    metrics = [json.loads((d / "metrics.json").read_text()) for d in (run, tmp_path / "uninterrupted")]
    assert metrics[0]["model"] == "resnet18_spp"
    assert metrics[0]["val/top1_err"] == metrics[1]["val/top1_err"]
