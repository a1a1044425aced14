"""Build a registered model from the settings of a run's ``model`` config."""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union, cast

import timm

from spp_cls.models.lrn import IMAGENET_CAFFE_SCALE
from spp_cls.models.network import SppNet
from spp_cls.models.registry import model_name
from spp_cls.models.timm_backbone import TimmBackboneNet


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
    lrn_input_scale: float = IMAGENET_CAFFE_SCALE,
    baseline_pool: str = "paper_bins",
    init: str = "kaiming",
    backbone: Optional[str] = None,
    pretrained: bool = False,
    pretrained_file: Optional[str] = None,
    backbone_kwargs: Optional[dict] = None,
) -> Union[SppNet, TimmBackboneNet]:
    """SPP models get ``pyramid``; no-SPP models are built for ``input_size`` (the training crop) with the last
    pool ``baseline_pool``. With ``backbone`` (a timm model name; ``arch`` then names the same backbone) the
    network is that backbone with an SPP or its own global-pooling head (``timm_backbone.py``); the paper
    networks' settings (``lrn``, ``baseline_pool``, ``init``...) do not apply to it."""
    if backbone:
        return TimmBackboneNet(
            backbone,
            num_classes=num_classes,
            spp=spp,
            pyramid=pyramid,
            width=width,
            fc_dim=fc_dim,
            dropout=dropout,
            pretrained=pretrained,
            pretrained_file=pretrained_file,
            backbone_kwargs=dict(backbone_kwargs or {}),
        )
    kwargs: dict[str, Any] = dict(
        num_classes=num_classes,
        width=width,
        fc_dim=fc_dim,
        dropout=dropout,
        lrn=lrn,
        lrn_input_scale=lrn_input_scale,
        init=init,
    )
    if spp:
        kwargs["pyramid"] = list(pyramid)
    else:
        kwargs["img_size"] = input_size
        kwargs["baseline_pool"] = baseline_pool
    # timm.create_model is typed to return nn.Module; the registered spp-cls models are SppNets
    return cast(SppNet, timm.create_model(model_name(arch, spp), **kwargs))
