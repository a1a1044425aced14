"""``model.width`` for timm backbones: the keyword arguments of ``timm.create_model`` that scale a backbone's
channels, for the families whose widths timm takes as arguments (timm has no generic width multiplier).

The variant's own widths are read from a copy built on the meta device (no memory, no weights), so that a
multiplier applies to what the name means (resnet10t's 32-wide stem, convnext_atto's 40..320 dims).
"""

from __future__ import annotations

from typing import Any

import timm
import torch
from timm.models.convnext import ConvNeXt
from timm.models.resnet import ResNet
from torch import nn

#: the families ``model.width`` applies to, as the docs and the start-up check name them
WIDTH_FAMILIES = ("ResNet (resnet*, resnext*)", "ConvNeXt (convnext*)")


def _scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


def width_kwargs(name: str, width: float, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``timm.create_model`` arguments that build backbone ``name`` (with ``kwargs``) at ``width`` x its channels;
    ValueError for a family whose widths timm does not take as arguments."""
    if width == 1.0:
        return {}
    with torch.device("meta"):
        model: Any = timm.create_model(name, **kwargs)
    family = type(model)
    if issubclass(family, ResNet):
        stem = model.conv1
        stem_width = stem.out_channels if isinstance(stem, nn.Conv2d) else stem[3].out_channels  # deep: 2nd conv
        expansion = type(model.layer1[0]).expansion
        planes = [int(info["num_chs"]) // expansion for info in model.feature_info[1:]]
        return dict(channels=tuple(_scaled(c, width) for c in planes), stem_width=_scaled(int(stem_width), width))
    if issubclass(family, ConvNeXt):
        return dict(dims=tuple(_scaled(info["num_chs"], width) for info in model.feature_info))
    raise ValueError(
        f"model.width={width}: timm takes no channel widths for {name} ({type(model).__name__}); model.width "
        f"applies to {', '.join(WIDTH_FAMILIES)}: pick a smaller variant of {name} instead, or model.width=1"
    )
