"""Kill -9 and resume (train.py in a subprocess, ``ckpt_path=auto``, fixed run directory): a run interrupted at an
epoch boundary, mid-epoch and during a checkpoint write ends with the weights, optimizer and schedule state,
metrics and logs of an uninterrupted run (CPU, deterministic mode)."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from spp_cls.checkpointing import load_safe, newest_checkpoint
from tests.helpers import run_script

# 4 steps per epoch; a mid-epoch checkpoint after every step; the learning rate drops after every epoch
# (plateau with patience 0 and an improvement threshold no error can beat) until its 2 drops are used up
RUN = (
    "experiment=smoke",
    "trainer.deterministic=true",
    "trainer.max_epochs=3",
    "logger=[csv,tensorboard]",
    "optim.plateau_patience=0",
    "optim.plateau_threshold=1",
    "callbacks.checkpoint.every_minutes=1e-9",
)


def train(data: Path, run_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    return run_script("train.py", *RUN, f"data.root={data}", f"hydra.run.dir={run_dir}", *extra)


def train_until_killed(data: Path, run_dir: Path, **at: object) -> None:
    args = [f"+callbacks.kill.{key}={value}" for key, value in at.items()]
    result = train(data, run_dir, "+callbacks.kill._target_=tests.cli.interrupt.KillAt", *args)
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]


def resume_point(run_dir: Path) -> tuple[int, int]:
    """(epoch, global step) of the checkpoint ckpt_path=auto picks."""
    newest = newest_checkpoint(run_dir)
    assert newest == run_dir / "checkpoints" / "last.ckpt"
    checkpoint = load_safe(newest)
    return checkpoint["epoch"], checkpoint["global_step"]


TIMINGS = "perf/"  # throughput metrics: measured times, different in every run


def csv_rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "csv" / "metrics.csv").open(newline="") as f:
        rows = [{k: v for k, v in row.items() if v and not k.startswith(TIMINGS)} for row in csv.DictReader(f)]
    return [row for row in rows if set(row) != {"step"}]  # a row that held only timings


def scalars(run_dir: Path) -> set[tuple[str, int, float]]:
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()  # applies the purge_step markers of resumed runs
    return {
        (tag, e.step, e.value)
        for tag in events.Tags()["scalars"]
        if not tag.startswith(TIMINGS)
        for e in events.Scalars(tag)
    }


@pytest.fixture(scope="module")
def uninterrupted(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    result = train(tiny_data, run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


@pytest.mark.slow
def test_a_run_killed_three_times_ends_as_an_uninterrupted_one(
    tiny_data: Path, uninterrupted: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    train_until_killed(tiny_data, run, step=2)  # mid-epoch: after batch 2 of 4 of epoch 1
    assert resume_point(run) == (0, 2)
    train_until_killed(tiny_data, run, epoch_start=1)  # at the epoch boundary, its checkpoint written
    assert resume_point(run) == (1, 4)
    train_until_killed(tiny_data, run, step=6, in_checkpoint_write=True)  # inside the write of step 7's checkpoint
    assert resume_point(run) == (1, 6) and list(run.glob("checkpoints/.last.ckpt.tmp-*"))
    final = train(tiny_data, run)
    assert final.returncode == 0, final.stderr[-3000:]
    assert not list(run.glob("checkpoints/.last.ckpt.tmp-*"))  # the dead writer's temporary file was removed

    ours, theirs = load_safe(run / "checkpoints" / "last.ckpt"), load_safe(uninterrupted / "checkpoints" / "last.ckpt")
    assert ours["global_step"] == theirs["global_step"] == 12 and ours["epoch"] == theirs["epoch"] == 3
    for key, tensor in theirs["state_dict"].items():
        assert torch.equal(ours["state_dict"][key], tensor), key
    momenta = [
        (a["momentum_buffer"], b["momentum_buffer"])
        for a, b in zip(ours["optimizer_states"][0]["state"].values(), theirs["optimizer_states"][0]["state"].values())
    ]
    assert momenta and all(torch.equal(a, b) for a, b in momenta)
    assert ours["lr_schedulers"] == theirs["lr_schedulers"]
    lrs = [c["optimizer_states"][0]["param_groups"][0]["lr"] for c in (ours, theirs)]
    assert lrs[0] == lrs[1] == pytest.approx(0.01 * 16 / 128 * 0.01)  # both plateau drops, one after a mid-epoch resume

    metrics = [json.loads((d / "metrics.json").read_text()) for d in (run, uninterrupted)]
    assert metrics[0]["evaluated_checkpoint"] == metrics[0]["last_checkpoint"] == str(run / "checkpoints" / "last.ckpt")
    for m in metrics:
        m.pop("last_checkpoint"), m.pop("best_checkpoint"), m.pop("evaluated_checkpoint")  # paths of each run
    assert metrics[0] == metrics[1]

    # the logs continue: everything the resumed runs logged is what the uninterrupted run logged, and all it lacks
    # is the step-level loss of a batch whose checkpoint was written just before it was logged (killed in between)
    rows, reference = csv_rows(run), csv_rows(uninterrupted)
    assert all(row in reference for row in rows)
    lost = [row for row in reference if row not in rows]
    assert len(lost) <= 2 and all(set(row) == {"epoch", "step", "train/loss_step"} for row in lost), lost
    ours_tb, theirs_tb = scalars(run), scalars(uninterrupted)
    assert ours_tb <= theirs_tb and {tag for tag, _, _ in theirs_tb - ours_tb} <= {"train/loss_step", "epoch"}
    assert {p.parent for p in run.rglob("events.out.tfevents.*")} == {run / "tensorboard"}  # no version_N folders

    log = (run / "train.log").read_text()
    assert "resumed at epoch 1, batch 2 (global step 2)" in log and "resumed at epoch 2, batch 2 (global step 6)" in log
    assert log.count("epoch 1/3:") == 1 and log.count("epoch 3/3:") == 1
