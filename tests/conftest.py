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
