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

from spp_cls.data.folder import list_class_folder_files, list_classes
from tests.data import bad_images
from tests.helpers import run_script

# global batch 2: one image per process and step, so each unreadable file makes a batch with no image at all
RUN = ("experiment=smoke", "trainer.devices=2", "trainer.strategy=ddp", "data.batch_size=2", "trainer.max_epochs=1",
       "callbacks.checkpoint.every_minutes=null", "validate_best=false", "logger=csv",
       "data.synthetic=null")  # plain class folders: a synthetic root would be regenerated over the bad files
HANG_GUARD_S = 300  # two processes that wait for each other forever fail here instead of hanging the suite


def _data_with_unreadable(tiny_data: Path, root: Path, count: int) -> list[Path]:
    shutil.copytree(tiny_data, root)
    files = sorted((root / "train" / "00_disk").iterdir())[:count]
    for path in files:
        path.write_bytes(b"not an image")
    return files


@pytest.mark.slow
def test_batches_of_only_unreadable_files_train_and_are_counted(tiny_data: Path, tmp_path: Path) -> None:
    bad = _data_with_unreadable(tiny_data, tmp_path / "data", 6)
    run = tmp_path / "run"
    result = run_script("train.py", *RUN, f"data.root={tmp_path / 'data'}", f"hydra.run.dir={run}",
                        "data.max_skip_fraction=0.5", timeout=HANG_GUARD_S)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["global_step"] == 32  # 64 images, 2 a step: every step taken, none skipped
    assert metrics["train_skipped"] == len(bad)  # summed over both processes
    logs = (run / "train.log").read_text() + "".join(p.read_text() for p in run.glob("train_ddp_process_*.log"))
    assert "skipped" in logs and any(p.name in logs for p in bad), logs[-2000:]


def _files_of_rank(root: Path, rank: int, seed: int = 0) -> list[Path]:
    """The training files process ``rank`` of 2 reads in epoch 0 (the data module's split of the shuffled list)."""
    split = root / "train"
    samples = list_class_folder_files(split, list_classes(split))
    indices = list(DistributedSampler(range(len(samples)), num_replicas=2, rank=rank, shuffle=True, seed=seed))
    return [Path(samples[i][0]) for i in indices]


@pytest.mark.slow
def test_a_breach_seen_by_one_process_stops_both_with_the_same_error(tiny_data: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    shutil.copytree(tiny_data, root)
    for path in _files_of_rank(root, 1)[-3:]:  # late in process 1's epoch; process 0 reads every file it has
        path.write_bytes(b"not an image")
    run = tmp_path / "run"
    # 3 unreadable of the 32 images of process 1 (9%) against a limit of 5%; process 0 skips nothing
    result = run_script("train.py", *RUN, f"data.root={root}", f"hydra.run.dir={run}",
                        "data.max_skip_fraction=0.05", "trainer.log_every_n_steps=4", timeout=HANG_GUARD_S)
    assert result.returncode == 2, result.stderr[-3000:]
    for log in ((run / "train.log").read_text(), (run / "train_ddp_process_1.log").read_text()):
        assert "process 1: 3 of the 32 train images of this epoch could not be read" in log, log[-2000:]
        assert "data.max_skip_fraction=0.05" in log and "process 0:" not in log
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_under_ddp_only_logging_steps_send_messages_between_processes(tiny_data: Path, tmp_path: Path) -> None:
    counts, run = tmp_path / "counts", tmp_path / "run"
    # every_minutes stays 30: no mid-epoch save (a save is a collective too, and only ever at a decision step)
    result = run_script("train.py", "experiment=smoke", "trainer.devices=2", "trainer.strategy=ddp", "data.batch_size=8",
                        "trainer.max_epochs=2", "trainer.log_every_n_steps=3", f"data.root={tiny_data}",
                        f"hydra.run.dir={run}", "validate_best=false",
                        "+callbacks.count._target_=tests.lightning.collectives.CountCollectives",
                        f"+callbacks.count.out={counts}", timeout=HANG_GUARD_S)
    assert result.returncode == 0, result.stderr[-3000:]
    for rank in (0, 1):
        steps = json.loads((counts / f"rank{rank}.json").read_text())
        assert len(steps) == 16  # 2 epochs of 64 images at 8 a step
        for step in steps:
            logging = (step["global_step"] + 1) % 3 == 0
            if logging:  # the step loss's all-reduce (Lightning's barrier first), the two votes (checkpoint, data)
                assert sorted(step["calls"]) == ["all_reduce"] * 3 + ["barrier"], step
            else:
                assert step["calls"] == [], step


@pytest.mark.slow
def test_sigterm_stops_every_process_after_one_checkpoint_at_the_same_step(tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ("experiment=smoke", "trainer.devices=2", "trainer.strategy=ddp", "trainer.max_epochs=2",
            f"data.root={tiny_data}", f"hydra.run.dir={run}", "validate_best=false")
    stopped = run_script("train.py", *args, "+callbacks.term._target_=tests.lightning.collectives.SignalAt",
                         "+callbacks.term.step=2", timeout=HANG_GUARD_S)
    assert stopped.returncode == 143, stopped.stderr[-3000:]  # 128 + SIGTERM: a stopped run must not look finished
    logs = [(run / "train.log").read_text(), (run / "train_ddp_process_1.log").read_text()]
    held = [re.findall(r"SIGTERM received: \S+ holds (epoch \d+, batch \d+)", log) for log in logs]
    assert held[0] and held[0] == held[1], logs  # one checkpoint, the same step, on both processes
    resumed = run_script("train.py", *args, timeout=HANG_GUARD_S)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed at {held[0][0]}" in (run / "train.log").read_text()
    assert json.loads((run / "metrics.json").read_text())["global_step"] == 8
