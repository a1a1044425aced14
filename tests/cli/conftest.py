"""The uninterrupted 2-process DDP run that the DDP and two-node tests compare with (trained once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_ddp import DDP, train


@pytest.fixture(scope="session")
def ddp_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke experiment on 2 CPU processes (one node, Lightning's launcher), 3 epochs, a checkpoint every step."""
    run_dir = tmp_path_factory.mktemp("ddp")
    result = train(tiny_data, run_dir, *DDP)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir
