"""The modern recipe's keys at start-up: recipe=modern composes and validates, impossible values are named."""

from __future__ import annotations

import pytest

from spp_cls.config.validation import ConfigError, validate_train_config
from tests.config.test_validation import compose_train


def test_the_modern_recipe_composes_and_validates() -> None:
    cfg = compose_train("recipe=modern")
    validate_train_config(cfg)
    assert cfg.optim.name == "adamw" and cfg.optim.scheduler == "cosine" and cfg.callbacks.ema.decay == 0.9998
    assert "checkpoint" in cfg.callbacks  # callbacks=ema keeps the default callbacks
    validate_train_config(compose_train("experiment=demo", "recipe=modern", "optim.warmup_epochs=0.5"))
    with pytest.raises(ConfigError, match="leaves no cosine"):  # 5 warmup epochs of DeiT in a 4-epoch run
        validate_train_config(compose_train("experiment=demo", "recipe=modern"))


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["optim.name=adam"], "optim.name='adam' is not one of"),
        (["optim.name=lamb", "optim.implementation=fused"], "has no fused kernel"),
        (["optim.betas=[0.9]"], "optim.betas must be two numbers"),
        (["optim.eps=0"], "optim.eps must be > 0"),
        (["optim.warmup_epochs=1"], "needs optim.scheduler=cosine"),
        (["optim.scheduler=cosine", "optim.warmup_epochs=70"], "leaves no cosine"),
        (["optim.label_smoothing=1"], "optim.label_smoothing must be in"),
        (["optim.mixup_alpha=-1"], "optim.mixup_alpha must be >= 0"),
        (["optim.cutmix_alpha=-1"], "optim.cutmix_alpha must be >= 0"),
        (["eval_weights=swa"], "eval_weights='swa' is not one of"),
        (["callbacks=ema", "callbacks.ema.decay=1"], "callbacks.ema.decay must be in"),
    ],
)
def test_impossible_recipe_values_are_named(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        validate_train_config(compose_train(*overrides))
