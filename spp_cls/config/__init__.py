"""Config schema (structured configs for Hydra) and start-up validation."""

from spp_cls.config.schema import EvaluateConfig, TrainConfig, register_configs

__all__ = ["EvaluateConfig", "TrainConfig", "register_configs"]
