"""Unreadable files under DDP (2 CPU processes, gloo): a process whose batch holds only unreadable files still
takes part in the step, skips are counted over all processes, and a skip-fraction breach seen by one process
stops every process with the same clear error instead of leaving the others waiting in a collective."""

from __future__ import annotations

import json
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
