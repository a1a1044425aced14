"""A plain ``python train.py -m ...`` (no hydra.sweep.dir given) resolves its sweep folder and runs its jobs: the
folders build on ``paths.root_dir``, which must not need Hydra's runtime config (a multirun resolves the sweep
folder before Hydra sets it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO


@pytest.mark.slow
def test_a_multirun_without_a_sweep_folder_runs_in_the_default_one(tmp_path: Path) -> None:
    env = dict(os.environ, SPP_CLS_CACHE=str(tmp_path / "cache"))
    command = [
        sys.executable,
        str(REPO / "train.py"),
        "-m",
        "experiment=smoke",
        "seed=0,1",
        "trainer.fast_dev_run=true",
    ]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (sweep,) = (tmp_path / "outputs").glob("*/multiruns/*")  # paths.log_dir/<task_name>/multiruns/<time>
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    assert all((sweep / job / ".hydra" / "config.yaml").is_file() for job in ("0", "1"))
