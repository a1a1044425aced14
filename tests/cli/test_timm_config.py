"""model=timm composes and validates (both heads, multi-size for either, experiment=backbones at both scales);
impossible backbone settings are named by key at start-up."""

from __future__ import annotations

import pytest

from spp_cls.config.validation import ConfigError, validate_train_config
from tests.config.test_validation import compose_train


@pytest.mark.parametrize(
    "overrides",
    [
        ["model=timm"],
        ["model=timm", "model.backbone=convnext_atto", "model.spp=false", "data.train_sizes=[112,90]"],
        ["model=timm", "arm=spp_multi", "model.width=0.5"],
        ["experiment=backbones", "scale=embedded"],
    ],
)
def test_timm_configs_validate(overrides: list[str]) -> None:
    cfg = compose_train(*overrides)
    assert cfg.model.arch == cfg.model.backbone
    validate_train_config(cfg)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model=timm", "model.backbone=resnet_18"], "model.backbone='resnet_18' is not a timm model name"),
        (["model=timm", "model.backbone=regnetx_002", "model.width=0.5"], "model.width=0.5: timm takes no channel"),
        (["model=timm", "model.pretrained_file=/no/such.pth"], "model.pretrained=false: set it true"),
        (["model=timm", "model.backbone=convnext_atto", "data.crop_size=16"], "too small for model.backbone"),
        (["model.backbone=resnet18"], "model.arch='zf5' must name model.backbone='resnet18'"),
    ],
)
def test_impossible_backbone_settings_are_named(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        validate_train_config(compose_train(*overrides))
