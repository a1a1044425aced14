"""evaluate.py's config handling in-process: saved settings, command-line overrides, weight checks."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from spp_cls.checkpointing import CheckpointError
from spp_cls.cli.evaluate import merge_saved_config
from spp_cls.config import register_configs
from spp_cls.lightning import SppClassifier
from spp_cls.lightning.weights import load_weights
from tests.helpers import REPO

OPTIM = dict(momentum=0.9, weight_decay=0.0, scheduler="step", lr_factor=0.1, step_milestones=[1])
MODEL = dict(arch="zf5", spp=True, pyramid=[2, 1], width=0.125, fc_dim=8)


def test_saved_model_and_data_win_unless_overridden() -> None:
    register_configs()
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        composed = compose("evaluate", overrides=["ckpt_path=x.ckpt", "data.batch_size=64", "seed=3"])
    saved = {
        "model": dict(composed.model, arch="overfeat7", width=0.5),
        "data": dict(OmegaConf.to_container(composed.data), root="/saved", batch_size=7),
    }
    merged = merge_saved_config(saved, composed, ["data.batch_size=64", "seed=3"])
    assert merged.model.arch == "overfeat7" and merged.model.width == 0.5
    assert merged.data.root == "/saved" and merged.data.batch_size == 64 and merged.seed == 3
    regrouped = merge_saved_config(saved, composed, ["model=zf5"])
    assert regrouped.model.arch == "zf5" and regrouped.model.width == 1.0
    pretrained = dict(saved, model=dict(saved["model"], pretrained=True, pretrained_file="/gone/weights.pth"))
    merged = merge_saved_config(pretrained, composed, [])
    assert merged.model.pretrained is False and merged.model.pretrained_file is None  # the checkpoint's weights
    with pytest.raises(CheckpointError, match="no 'data' section"):
        merge_saved_config({"model": {}}, composed, [])


def test_weights_of_another_class_count_are_refused() -> None:
    trained = SppClassifier(model=MODEL, optim=OPTIM, num_classes=4, input_size=64, lr=0.1)
    other = SppClassifier(model=MODEL, optim=OPTIM, num_classes=3, input_size=64, lr=0.1)
    with pytest.raises(CheckpointError, match=r"zf5_spp with 3 classes: model.fc8.weight: checkpoint \(4, 8\)"):
        load_weights(other, trained.state_dict(), "x.ckpt", "zf5_spp")
    load_weights(
        SppClassifier(model=MODEL, optim=OPTIM, num_classes=4, input_size=64, lr=0.1),
        trained.state_dict(),
        "x.ckpt",
        "zf5_spp",
    )
