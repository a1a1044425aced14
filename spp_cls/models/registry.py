"""Registers the eight models in timm: ``zf5``, ``zf5_spp``, ``convnet5``, ``convnet5_spp``, ``overfeat5``,
``overfeat5_spp``, ``overfeat7``, ``overfeat7_spp``.

``timm.create_model(name, num_classes=..., pyramid=..., width=..., fc_dim=...)`` then builds them; no-SPP
models take ``img_size`` instead of ``pyramid``. timm reads ``default_cfgs`` of this module when a model is
registered, so it must be defined before the entry points.
"""

from __future__ import annotations

from typing import Any, Callable

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model

from spp_cls.models.architectures import ARCHITECTURES, Architecture
from spp_cls.models.network import SppNet

PAPER_INPUT_SIZE = 224


def model_name(arch: str, spp: bool) -> str:
    """Registry name of an architecture with or without its SPP head."""
    return f"{arch}_spp" if spp else arch


def _default_cfg(arch: Architecture, spp: bool) -> dict[str, Any]:
    map_size = arch.feature_size(PAPER_INPUT_SIZE)
    cfg: dict[str, Any] = dict(
        url="",
        num_classes=1000,
        input_size=(3, PAPER_INPUT_SIZE, PAPER_INPUT_SIZE),
        pool_size=(map_size, map_size),
        crop_pct=PAPER_INPUT_SIZE / 256,
        interpolation="bilinear",
        mean=IMAGENET_DEFAULT_MEAN,
        std=IMAGENET_DEFAULT_STD,
        first_conv="features.conv1.conv",
        classifier="fc8",
        paper_ids="arXiv:1406.4729",
        license="mit",
    )
    if spp:
        size = arch.min_input_size()
        cfg["min_input_size"] = (3, size, size)
    else:
        cfg["fixed_input_size"] = True
    return cfg


default_cfgs = generate_default_cfgs(
    {model_name(name, spp): _default_cfg(arch, spp) for name, arch in ARCHITECTURES.items() for spp in (False, True)}
)


def _create(arch: str, spp: bool, pretrained: bool, **kwargs: Any) -> SppNet:
    name = model_name(arch, spp)
    if pretrained:
        raise ValueError(f"no pretrained weights are published for {name}; train it with spp-cls")
    for key in ("img_size", "baseline_pool"):
        if spp and key in kwargs:
            raise ValueError(f"{name} takes inputs of any size; {key} applies to the no-SPP models only")
    if not spp and "pyramid" in kwargs:
        raise ValueError(f"{name} has no SPP head; pyramid applies to {model_name(arch, True)}")
    return build_model_with_cfg(
        SppNet,
        name,
        pretrained=False,
        feature_cfg=dict(flatten_sequential=True, out_indices=tuple(range(len(ARCHITECTURES[arch].stages)))),
        arch=arch,
        spp=spp,
        **kwargs,
    )


def _entry_point(arch: str, spp: bool) -> Callable[..., SppNet]:
    def create(pretrained: bool = False, **kwargs: Any) -> SppNet:
        return _create(arch, spp, pretrained, **kwargs)

    create.__name__ = create.__qualname__ = model_name(arch, spp)
    create.__doc__ = f"{ARCHITECTURES[arch].title} {'with' if spp else 'without'} SPP (He et al. 2015, Table 1)."
    create.__module__ = __name__
    return create


for _arch in ARCHITECTURES:
    for _spp in (False, True):
        register_model(_entry_point(_arch, _spp))

MODEL_NAMES: tuple[str, ...] = tuple(model_name(a, s) for a in ARCHITECTURES for s in (False, True))
