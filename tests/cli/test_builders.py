"""Config -> objects: settings that contradict each other are resolved by name, with a message; the layers
receive the composed nodes as their own config classes."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from spp_cls.cli.builders import as_config, build_trainer
from spp_cls.config.validation import validate_train_config
from spp_cls.data.config import DataConfig
from spp_cls.data.synthetic import SyntheticSpec
from spp_cls.evaluation.config import MultiviewConfig, ProtocolConfig
from spp_cls.lightning.data_quality import DataQualityGuard
from spp_cls.lightning.resume_checkpoint import ResumeCheckpoint
from tests.config.test_validation import compose_train


def test_deterministic_turns_cudnn_autotuning_off_and_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = compose_train(
        "trainer.benchmark=true",
        "trainer.deterministic=true",
        "trainer.accelerator=cpu",
        f"paths.output_dir={tmp_path}",
        "logger=none",
    )
    with caplog.at_level(logging.WARNING):
        build_trainer(cfg)
    assert torch.backends.cudnn.benchmark is False
    assert "trainer.deterministic=True turns off trainer.benchmark" in caplog.text
    build_trainer(
        compose_train(
            "trainer.benchmark=true", "trainer.accelerator=cpu", f"paths.output_dir={tmp_path}", "logger=none"
        )
    )
    assert torch.backends.cudnn.benchmark is True  # without determinism, autotuning stays as asked
    torch.backends.cudnn.benchmark = False


def test_every_trainer_enforces_the_skip_limit_before_the_epoch_summary_resets_it(tmp_path: Path) -> None:
    trainer = build_trainer(compose_train("trainer.accelerator=cpu", f"paths.output_dir={tmp_path}", "logger=none"))
    names = [type(c).__name__ for c in trainer.callbacks]
    assert isinstance(trainer.callbacks[0], DataQualityGuard) and names.index("EpochSummary") > 0


def test_the_layers_receive_the_composed_config_nodes_as_their_schema_objects(tmp_path: Path) -> None:
    """One declaration per setting: ``data`` and ``protocol`` become the data and evaluation layers' own config
    classes by one generic conversion, every value carried over, interpolations resolved."""
    cfg = compose_train(
        f"paths.cache_dir={tmp_path}", "data.crop_size=96", "data.resize_size=110", "protocol.multiview.layout=ten"
    )
    data = as_config(cfg.data, DataConfig)
    assert isinstance(data, DataConfig) and isinstance(data.synthetic, SyntheticSpec)
    assert data.root == f"{tmp_path}/synthetic" and data.crop_size == 96 and data.train_sizes == [96]
    assert OmegaConf.to_container(OmegaConf.structured(data)) == OmegaConf.to_container(cfg.data, resolve=True)
    protocol = as_config(cfg.protocol, ProtocolConfig)
    assert isinstance(protocol.multiview, MultiviewConfig) and protocol.multiview.layout == "ten"
    assert as_config(data, DataConfig) is data


def test_a_saved_data_section_without_newer_keys_still_builds() -> None:
    """A checkpoint's saved (resolved) run config from before a data key existed: the schema's default fills it in."""
    saved = OmegaConf.to_container(compose_train("data=imagenet", "data.root=/data").data, resolve=True)
    del saved["max_skip_fraction"]
    data = as_config(saved, DataConfig)
    assert data.max_skip_fraction == DataConfig().max_skip_fraction and data.root == "/data"


def test_a_config_with_the_former_resume_target_still_builds(tmp_path: Path) -> None:
    """Run folders and requeued jobs of earlier versions name the callback by its former module."""
    cfg = compose_train(
        "trainer.accelerator=cpu",
        f"paths.output_dir={tmp_path}",
        "logger=none",
        "callbacks.checkpoint._target_=spp_cls.lightning.resume.ResumeCheckpoint",
    )
    validate_train_config(cfg)
    trainer = build_trainer(cfg)
    assert any(isinstance(c, ResumeCheckpoint) for c in trainer.callbacks)
