"""``ckpt_path=auto``: the newest complete checkpoint a run directory can resume from, or none.

Candidates are ``checkpoints/last.ckpt`` (spp-cls's resume checkpoint) and the ``hpc_ckpt_<n>.ckpt`` files
that Lightning's own Slurm requeue writes into the run directory. They are ranked by the training progress
recorded inside them (epoch, then optimizer step, then batches), file time only breaking ties, because a
copy or a clock can change a file's time but not its content. A file that does not load (truncated, not a
checkpoint) is skipped with a warning. Temporary files of an interrupted atomic write are never candidates.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

from spp_cls.checkpointing.files import CheckpointError, load_safe

log = logging.getLogger(__name__)

LAST = Path("checkpoints") / "last.ckpt"
HPC_PATTERN = "hpc_ckpt_*.ckpt"


def resume_candidates(run_dir: Path) -> list[Path]:
    """The checkpoint files of ``run_dir`` that a run may resume from (existing ones only)."""
    found = [run_dir / LAST] if (run_dir / LAST).is_file() else []
    return found + sorted(p for p in run_dir.glob(HPC_PATTERN) if p.is_file())


def progress_key(checkpoint: dict[str, Any]) -> tuple[int, int, int]:
    """(epoch, optimizer steps, batches trained on) recorded in a Lightning checkpoint."""
    batches = (
        checkpoint.get("loops", {})
        .get("fit_loop", {})
        .get("epoch_loop.batch_progress", {})
        .get("total", {})
        .get("processed", 0)
    )
    return int(checkpoint.get("epoch", 0)), int(checkpoint.get("global_step", 0)), int(batches)


def first_logged_step(checkpoint: dict[str, Any]) -> int:
    """The logger step of the first metrics a run resumed from ``checkpoint`` logs.

    Lightning logs with its count of optimizer-stepping batches; a checkpoint written at a batch end holds the
    count before that batch's increment, and Lightning adds it back when it resumes there.
    """
    loop = checkpoint.get("loops", {}).get("fit_loop", {})
    stepped = int(loop.get("epoch_loop.state_dict", {}).get("_batches_that_stepped", 0))
    batches = loop.get("epoch_loop.batch_progress", {}).get("total", {})
    at_batch_end = batches.get("processed", 0) == batches.get("completed", 0) + 1
    return stepped + int(at_batch_end)


def newest_checkpoint(run_dir: str | Path) -> Optional[Path]:
    """The most advanced complete checkpoint of ``run_dir`` (None when there is none: a first start)."""
    ranked = []
    for path in resume_candidates(Path(run_dir)):
        try:
            checkpoint = load_safe(path, mmap=True)
        except CheckpointError as err:
            log.warning("ckpt_path=auto skips %s: %s", path, err)
            continue
        ranked.append((progress_key(checkpoint), path.stat().st_mtime, path))
    return max(ranked)[2] if ranked else None


def resolve_resume_path(ckpt_path: Optional[str], run_dir: str | Path) -> Optional[str]:
    """``auto``: the newest checkpoint of the run directory, or None; any other value is returned as is."""
    if ckpt_path != "auto":
        return ckpt_path
    newest = newest_checkpoint(run_dir)
    return str(newest) if newest is not None else None
