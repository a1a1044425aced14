"""Shared fixtures: a tiny generated data set (the smoke experiment's)."""

from __future__ import annotations

from pathlib import Path

import pytest

import spp_cls  # noqa: F401  (registers the models in timm before tests are collected)
from spp_cls.data.synthetic import SyntheticSpec, ensure_synthetic_dataset

TINY_SPEC = SyntheticSpec(num_classes=4, train_per_class=16, val_per_class=8, min_short_side=72, max_short_side=88)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke experiment's data set (4 classes, 64 train / 32 val images), generated once per session."""
    return ensure_synthetic_dataset(tmp_path_factory.mktemp("data") / "tiny", TINY_SPEC)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist with ``--dist loadgroup`` (scripts/test.sh): the tests on the local Slurm share one
    worker, as they share one slurmctld on this machine (its session fixture, tests/slurm_cluster.py)."""
    for item in items:
        if "local_slurm" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("slurm"))
