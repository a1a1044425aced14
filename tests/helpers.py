"""Helpers for tests that run the entry-point scripts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytorch_lightning as pl

REPO = Path(__file__).resolve().parents[1]


def run_script(
    script: str, *overrides: str, cache: Path | None = None, timeout: int = 600
) -> subprocess.CompletedProcess:
    """Run ``python <script> <overrides>`` from the repository root and capture its output."""
    env = dict(os.environ, HYDRA_FULL_ERROR="1", PYTHONWARNINGS="ignore")
    if cache is not None:
        env["SPP_CLS_CACHE"] = str(cache)
    return subprocess.run(
        [sys.executable, str(REPO / script), *overrides],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


#: SGD settings of the Lightning module for tests that build it directly (a step schedule, no plateau logic)
STEP_OPTIM = dict(
    momentum=0.9,
    weight_decay=5e-4,
    scheduler="step",
    lr_factor=0.1,
    lr_drops=2,
    plateau_patience=1,
    plateau_threshold=1e-3,
    step_milestones=[5],
)


def quiet_trainer(root: Path, **kwargs: Any) -> "pl.Trainer":
    """A one-CPU Lightning trainer for tests that fit directly: no logger, progress bar, summary, Lightning
    checkpoints or sanity validation, the data module's own sampler kept; ``kwargs`` add or replace arguments."""
    import pytorch_lightning as pl

    args: dict[str, Any] = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        default_root_dir=root,
        use_distributed_sampler=False,
    )
    return pl.Trainer(**(args | kwargs))
