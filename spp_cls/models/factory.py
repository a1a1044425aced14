"""Build a registered model from the settings of a run's ``model`` config."""

from __future__ import annotations

from typing import Sequence

import timm

from spp_cls.models.network import SppNet
from spp_cls.models.registry import model_name


def create_classifier(
    arch: str,
    spp: bool,
    num_classes: int,
    input_size: int,
    pyramid: Sequence[int] = (6, 3, 2, 1),
    width: float = 1.0,
    fc_dim: int = 4096,
    dropout: float = 0.5,
    lrn: str = "within_channel",
    init: str = "kaiming",
) -> SppNet:
    """SPP models get ``pyramid``; no-SPP models are built for ``input_size`` (the training crop)."""
    kwargs = dict(num_classes=num_classes, width=width, fc_dim=fc_dim, dropout=dropout, lrn=lrn, init=init)
    if spp:
        kwargs["pyramid"] = list(pyramid)
    else:
        kwargs["img_size"] = input_size
    return timm.create_model(model_name(arch, spp), **kwargs)
