"""Decisions under DDP (2 CPU processes, gloo): a process whose batch holds only unreadable files still takes part
in the step and skips are counted over all processes; a skip-fraction breach seen by one process stops every
process with the same clear error instead of leaving the others waiting in a collective; SIGTERM stops every
process after a checkpoint at the same step; and only logging steps send messages between processes."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from torch.utils.data import DistributedSampler

from spp_cls.checkpointing import load_safe
from spp_cls.data.folder import list_class_folder_files, list_classes
from tests.helpers import run_script

# global batch 2: one image per process and step, so each unreadable file makes a batch with no image at all
RUN = (
    "experiment=smoke",
    "trainer.devices=2",
    "trainer.strategy=ddp",
    "data.batch_size=2",
    "trainer.max_epochs=1",
    "callbacks.checkpoint.every_minutes=null",
    "validate_best=false",
    "logger=csv",
    "data.synthetic=null",
)  # plain class folders: a synthetic root would be regenerated over the bad files
HANG_GUARD_S = 300  # two processes that wait for each other forever fail here instead of hanging the suite


def _files_of_rank(root: Path, rank: int, seed: int = 0) -> list[Path]:
    """The training files process ``rank`` of 2 reads in epoch 0 (the data module's split of the shuffled list)."""
    split = root / "train"
    samples = list_class_folder_files(split, list_classes(split))
    indices = list(DistributedSampler(range(len(samples)), num_replicas=2, rank=rank, shuffle=True, seed=seed))
    return [Path(samples[i][0]) for i in indices]


def _assert_messages_only_at_logging_steps(counts: Path, steps: int, every: int) -> None:
    """Between processes, a training step sends nothing but the gradient all-reduce (not counted: it runs in the
    DDP reducer), except at logging steps: the step loss's all-reduce (after Lightning's barrier) and two votes
    (checkpoint, data quality; at an epoch's last step only the second: the epoch boundary saves anyway)."""
    for rank in (0, 1):
        recorded = json.loads((counts / f"rank{rank}.json").read_text())
        assert len(recorded) == steps
        for step in recorded:
            if (step["global_step"] + 1) % every == 0:
                votes = 1 if step["global_step"] + 1 == steps else 2
                assert sorted(step["calls"]) == ["all_reduce"] * (1 + votes) + ["barrier"], step
            else:
                assert step["calls"] == [], step


@pytest.mark.slow
def test_batches_of_only_unreadable_files_train_are_counted_and_send_no_extra_messages(
    tiny_data: Path, tmp_path: Path
) -> None:
    root, run, counts = tmp_path / "data", tmp_path / "run", tmp_path / "counts"
    shutil.copytree(tiny_data, root)
    bad = _files_of_rank(root, 0)[5:8] + _files_of_rank(root, 1)[9:12]  # steps 6-8 on one process, 10-12 on the other
    for path in bad:
        path.write_bytes(b"not an image")
    result = run_script(
        "train.py",
        *RUN,
        f"data.root={root}",
        f"hydra.run.dir={run}",
        "data.max_skip_fraction=0.5",
        "trainer.log_every_n_steps=4",
        "+callbacks.count._target_=tests.lightning.collectives.CountCollectives",
        f"+callbacks.count.out={counts}",
        timeout=HANG_GUARD_S,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["global_step"] == 32  # 64 images, 2 a step: every step taken, none skipped
    assert metrics["train_skipped"] == len(bad)  # summed over both processes
    logs = (run / "train.log").read_text() + (run / "train_rank1.log").read_text()
    assert all(p.name in logs for p in bad), logs[-2000:]
    _assert_messages_only_at_logging_steps(counts, steps=32, every=4)


@pytest.mark.slow
def test_a_breach_seen_by_one_process_stops_both_with_the_same_error(tiny_data: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    shutil.copytree(tiny_data, root)
    for path in _files_of_rank(root, 1)[:3]:  # steps 1-3 of process 1; process 0 reads every file it has
        path.write_bytes(b"not an image")
    run = tmp_path / "run"
    # 3 unreadable of the 32 images of process 1 (9%) against a limit of 5%; process 0 skips nothing
    result = run_script(
        "train.py",
        *RUN,
        f"data.root={root}",
        f"hydra.run.dir={run}",
        "data.max_skip_fraction=0.05",
        "trainer.log_every_n_steps=4",
        timeout=HANG_GUARD_S,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    for log in ((run / "train.log").read_text(), (run / "train_rank1.log").read_text()):
        assert "process 1: 3 of the 32 train images of this epoch could not be read" in log, log[-2000:]
        assert "data.max_skip_fraction=0.05" in log and "process 0:" not in log
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_sigterm_stops_every_process_after_one_checkpoint_at_the_same_step(tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = (
        "experiment=smoke",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "trainer.max_epochs=2",
        f"data.root={tiny_data}",
        f"hydra.run.dir={run}",
        "validate_best=false",
    )
    stopped = run_script(
        "train.py",
        *args,
        "+callbacks.term._target_=tests.lightning.collectives.SignalAt",
        "+callbacks.term.step=2",
        timeout=HANG_GUARD_S,
    )
    assert stopped.returncode == 143, stopped.stderr[-3000:]  # 128 + SIGTERM: a stopped run must not look finished
    logs = [(run / "train.log").read_text(), (run / "train_rank1.log").read_text()]
    held = [re.findall(r"SIGTERM received: \S+ holds (epoch \d+, batch \d+)", log) for log in logs]
    assert held[0] and held[0] == held[1], logs  # one checkpoint, the same step, on both processes
    checkpoint = load_safe(run / "checkpoints" / "last.ckpt")
    assert held[0][0] == "epoch 1, batch 3" and checkpoint["global_step"] == 3  # signalled after step 2: saved at 3
