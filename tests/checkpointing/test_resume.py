"""``ckpt_path=auto``: the newest complete checkpoint by recorded progress, corrupt files skipped, first starts."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spp_cls.checkpointing import newest_checkpoint, resolve_resume_path, save_atomic
from spp_cls.checkpointing.resume_path import first_logged_step
from spp_cls.io import remove_stale_temporaries


def lightning_like(epoch: int, step: int, batches: int, stepped: int = 0, at_batch_end: bool = False) -> dict:
    """The fields of a Lightning checkpoint that the choice of a resume checkpoint reads."""
    progress = {"processed": batches, "completed": batches - int(at_batch_end)}
    loops = {
        "fit_loop": {
            "epoch_loop.batch_progress": {"total": progress},
            "epoch_loop.state_dict": {"_batches_that_stepped": stepped},
        }
    }
    return {"epoch": epoch, "global_step": step, "loops": loops}


def test_a_first_start_has_nothing_to_resume(tmp_path: Path) -> None:
    assert resolve_resume_path("auto", tmp_path) is None
    assert resolve_resume_path(None, tmp_path) is None


def test_an_explicit_path_wins(tmp_path: Path) -> None:
    save_atomic(lightning_like(3, 30, 30), tmp_path / "checkpoints" / "last.ckpt")
    assert resolve_resume_path("/elsewhere/best.ckpt", tmp_path) == "/elsewhere/best.ckpt"


def test_the_most_advanced_checkpoint_wins_not_the_newest_file(tmp_path: Path) -> None:
    last = tmp_path / "checkpoints" / "last.ckpt"
    save_atomic(lightning_like(epoch=2, step=20, batches=20), last)
    hpc = tmp_path / "hpc_ckpt_1.ckpt"
    save_atomic(lightning_like(epoch=1, step=15, batches=15), hpc)  # written later, but older progress
    os.utime(last, (0, 0))
    assert newest_checkpoint(tmp_path) == last
    save_atomic(lightning_like(epoch=2, step=23, batches=23), tmp_path / "hpc_ckpt_2.ckpt")  # mid-epoch, further on
    assert resolve_resume_path("auto", tmp_path) == str(tmp_path / "hpc_ckpt_2.ckpt")


def test_a_truncated_checkpoint_is_skipped_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    save_atomic(lightning_like(1, 10, 10), tmp_path / "hpc_ckpt_1.ckpt")
    last = tmp_path / "checkpoints" / "last.ckpt"
    save_atomic(lightning_like(2, 20, 20), last)
    last.write_bytes(last.read_bytes()[:200])  # e.g. a copy cut short
    with caplog.at_level(logging.WARNING):
        assert newest_checkpoint(tmp_path) == tmp_path / "hpc_ckpt_1.ckpt"
    assert "skips" in caplog.text and "last.ckpt" in caplog.text
    (tmp_path / "hpc_ckpt_1.ckpt").unlink()
    assert newest_checkpoint(tmp_path) is None  # nothing usable: a fresh start, not an error


def test_temporaries_of_killed_writers_are_not_candidates_and_are_removed(tmp_path: Path) -> None:
    last = tmp_path / "checkpoints" / "last.ckpt"
    save_atomic(lightning_like(1, 10, 10), last)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = last.with_name(f".last.ckpt.tmp-{gone.stdout.strip()}")
    mine = last.with_name(f".last.ckpt.tmp-{os.getpid()}")
    save_atomic(lightning_like(9, 90, 90), stale)
    save_atomic(lightning_like(9, 90, 90), mine)
    assert newest_checkpoint(tmp_path) == last
    assert remove_stale_temporaries(last) == [stale]
    assert sorted(p.name for p in last.parent.iterdir()) == [mine.name, "last.ckpt"]  # a live writer's file stays


def test_first_logged_step_of_a_resumed_run() -> None:
    assert first_logged_step(lightning_like(2, 8, 8, stepped=8)) == 8  # an epoch boundary
    assert first_logged_step(lightning_like(1, 6, 6, stepped=5, at_batch_end=True)) == 6  # Lightning adds the batch
