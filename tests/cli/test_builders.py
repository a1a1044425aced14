"""Config -> Trainer: settings that contradict each other are resolved by name, with a message."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from spp_cls.cli.builders import build_trainer
from spp_cls.lightning.data_quality import DataQualityGuard
from tests.config.test_validation import compose_train


def test_deterministic_turns_cudnn_autotuning_off_and_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = compose_train("trainer.benchmark=true", "trainer.deterministic=true", "trainer.accelerator=cpu",
                        f"paths.output_dir={tmp_path}", "logger=none")
    with caplog.at_level(logging.WARNING):
        build_trainer(cfg)
    assert torch.backends.cudnn.benchmark is False
    assert "trainer.deterministic=True turns off trainer.benchmark" in caplog.text
    build_trainer(compose_train("trainer.benchmark=true", "trainer.accelerator=cpu", f"paths.output_dir={tmp_path}",
                                "logger=none"))
    assert torch.backends.cudnn.benchmark is True  # without determinism, autotuning stays as asked
    torch.backends.cudnn.benchmark = False


def test_every_trainer_enforces_the_skip_limit_before_the_epoch_summary_resets_it(tmp_path: Path) -> None:
    trainer = build_trainer(compose_train("trainer.accelerator=cpu", f"paths.output_dir={tmp_path}", "logger=none"))
    names = [type(c).__name__ for c in trainer.callbacks]
    assert isinstance(trainer.callbacks[0], DataQualityGuard) and names.index("EpochSummary") > 0
