"""Shared fixtures: a tiny generated data set and a runner for the entry-point scripts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import spp_cls  # noqa: F401  (registers the models in timm before tests are collected)
from spp_cls.data.synthetic import SyntheticSpec, ensure_synthetic_dataset

REPO = Path(__file__).resolve().parents[1]
TINY_SPEC = SyntheticSpec(num_classes=4, train_per_class=16, val_per_class=8, min_short_side=72, max_short_side=88)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke experiment's data set (4 classes, 64 train / 32 val images), generated once per session."""
    return ensure_synthetic_dataset(tmp_path_factory.mktemp("data") / "tiny", TINY_SPEC)


def run_script(script: str, *overrides: str, cache: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
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
