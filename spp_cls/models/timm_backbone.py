"""An SPP head or the backbone's own global pooling on any timm CNN (``model=timm model.backbone=<name>``).

Both heads see the same map, the one the backbone's own head pools (timm's ``forward_features``), and both
accept inputs of any size: the comparison is pooling against pooling. The head after the pooling is the same
for both: ``pre_logits`` (``fc_dim=0``: dropout only, as timm's heads; else fc -> ReLU -> dropout) and ``fc8``
(float32 under autocast, as the paper's networks). With ``spp=False`` the pooling is the backbone's own
(timm's head built with ``num_classes=0`` and moved to ``pool``: ConvNeXt's keeps its LayerNorm after the
pool), so ``fc_dim=0``
gives exactly the backbone's own global-pooling classifier.

The module has the parts the test protocols and the export call on the paper's ``SppNet``: ``features``
(the last map), ``pool``, ``pre_logits``, ``fc8``, ``pyramid`` (SPP), ``arch`` (the map's geometry,
``timm_geometry.py``), ``spp``, ``num_classes``, ``fixed_input_size`` (None: any size).
"""

# No "from __future__ import annotations": FX copies string annotations into traced code (see network.py).

import os
from collections import OrderedDict
from typing import Any, Optional, Sequence

import timm
import torch
from torch import nn

from spp_cls.models.network import ClassifierLinear
from spp_cls.models.spp import SpatialPyramidPool, check_pyramid
from spp_cls.models.timm_geometry import BackboneGeometry
from spp_cls.models.timm_width import width_kwargs


class ForwardFeatures(nn.Module):
    """A timm model's ``forward_features`` as a module (the protocols call ``features`` on whole images)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model: Any = model  # a timm model: timm's API (forward_features) is not in nn.Module's type

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)


def _after_global_pool(model: nn.Module) -> list[str]:
    """The children that timm's ``forward_head`` runs after ``global_pool`` (defined after it: MobileNetV3/V4's
    and GhostNet's 1x1 ``conv_head``, its norm and activation, ``flatten``), minus those that do nothing (the
    classifier, removed by ``num_classes=0``). Empty for a model without a ``global_pool`` child."""
    names = [name for name, _ in model.named_children()]
    if "global_pool" not in names:
        return []
    after = names[names.index("global_pool") + 1 :]
    return [name for name in after if not isinstance(getattr(model, name), nn.Identity)]


def take_pool(model: nn.Module) -> nn.Module:
    """Take the backbone's own head up to its pre-logits (its classifier already removed: ``num_classes=0``)
    out of ``model`` and return it: the ``head`` module (ConvNeXt, RegNet: pooling, a norm where there is one),
    else ``global_pool`` (ResNet, EfficientNet) with the layers timm runs after it (MobileNetV3/V4, GhostNet:
    a 1x1 conv widens the pooled vector). Taken out, not shared, so that its parameters are saved once, under
    ``pool``."""
    head = getattr(model, "head", None)
    if isinstance(head, nn.Module) and not isinstance(head, nn.Identity):
        model.head = nn.Identity()
        return head
    pool = getattr(model, "global_pool", None)
    if not isinstance(pool, nn.Module) or isinstance(pool, nn.Identity):
        raise ValueError(f"{type(model).__name__} has neither a head module nor a global_pool that spp-cls can take")
    parts = {name: getattr(model, name) for name in ["global_pool", *_after_global_pool(model)]}
    for name in parts:
        setattr(model, name, nn.Identity())
    return pool if len(parts) == 1 else nn.Sequential(OrderedDict(parts))


def build_backbone(
    name: str,
    spp: bool,
    width: float = 1.0,
    pretrained: bool = False,
    pretrained_file: Optional[str] = None,
    backbone_kwargs: Optional[dict] = None,
    in_chans: int = 3,
) -> nn.Module:
    """The timm model ``name`` without its classifier: with ``spp`` also without its pooling (timm's
    ``global_pool=''``), and without the head's layers whose parameters would then be unused (ConvNeXt's norm,
    MobileNetV3's ``conv_head``)."""
    kwargs: dict[str, Any] = dict(backbone_kwargs or {})
    kwargs.update(width_kwargs(name, width, kwargs))
    if pretrained_file:
        kwargs["pretrained_cfg_overlay"] = dict(file=str(pretrained_file))
    model = timm.create_model(
        name, pretrained=pretrained, num_classes=0, global_pool="" if spp else "avg", in_chans=in_chans, **kwargs
    )
    if spp:  # forward_features uses none of the head's layers: with their parameters, unused ones break DDP
        for name in ["head", *_after_global_pool(model)]:
            if isinstance(getattr(model, name, None), nn.Module):
                setattr(model, name, nn.Identity())
    return model


class TimmBackboneNet(nn.Module):
    """A timm backbone's last feature map, pooled by SPP (``spp=True``) or by the backbone's global pooling.

    Args:
        backbone: a timm model name whose ``forward_features`` returns an (N, C, H, W) map.
        num_classes: size of fc8 (0: no fc8, the model returns the pre-logits).
        spp: SPP (``pyramid``) instead of the backbone's global pooling.
        pyramid: SPP levels, in output order.
        width: channel multiplier (ResNet and ConvNeXt families: ``timm_width.py``).
        fc_dim: width of the fc layer between pooling and fc8; 0: none (pooling -> dropout -> fc8).
        dropout: dropout before fc8.
        pretrained: load timm's pretrained weights of ``backbone`` (from ``pretrained_file`` when given, else
            from timm's hub).
        pretrained_file: a local weights file for ``pretrained``.
        backbone_kwargs: further arguments of ``timm.create_model`` (e.g. ``drop_path_rate``).
        in_chans: input channels.
    """

    def __init__(
        self,
        backbone: str,
        num_classes: int = 1000,
        spp: bool = True,
        pyramid: Sequence[int] = (6, 3, 2, 1),
        width: float = 1.0,
        fc_dim: int = 0,
        dropout: float = 0.0,
        pretrained: bool = False,
        pretrained_file: Optional[str] = None,
        backbone_kwargs: Optional[dict] = None,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        if fc_dim < 0 or num_classes < 0 or not 0.0 <= dropout < 1.0:
            raise ValueError(
                f"need fc_dim >= 0, num_classes >= 0 and 0 <= dropout < 1; "
                f"got fc_dim={fc_dim}, num_classes={num_classes}, dropout={dropout}"
            )
        self.spp = spp
        self.pyramid = check_pyramid(pyramid) if spp else ()
        self.num_classes = num_classes
        self.fc_dim = fc_dim
        self.drop_rate = dropout
        self.in_chans = in_chans
        self.fixed_input_size: Optional[tuple[int, int]] = None  # both heads take any size

        def build(pretrained: bool = False) -> nn.Module:
            return build_backbone(backbone, spp, width, pretrained, pretrained_file, backbone_kwargs, in_chans)

        def build_narrow() -> nn.Module:
            """The same layers with 8 channels in the narrowest stage where the family allows it, for measuring
            the geometry (which channels do not change) in a fraction of the time."""
            factor = min(1.0, 8 / min(int(info["num_chs"]) for info in model.feature_info))
            try:
                narrow = build_backbone(backbone, spp, width * factor, False, None, backbone_kwargs, in_chans)
            except ValueError:
                narrow = build()
            return ForwardFeatures(narrow)

        model: Any = build(pretrained)
        info = model.feature_info[-1]
        self.features = ForwardFeatures(model)
        self.arch = BackboneGeometry(backbone, int(info["reduction"]), build_narrow, in_chans)
        self.num_features = int(model.num_features)
        self.feature_info = [dict(info, module="features.model." + info["module"])]
        if spp:
            self.pool: nn.Module = SpatialPyramidPool(self.pyramid)
            in_dim = self.pool.output_dim(self.num_features)
        else:
            in_dim = int(getattr(model, "head_hidden_size", None) or self.num_features)
            self.pool = take_pool(model)
        layers: list[nn.Module] = [] if fc_dim == 0 else [nn.Linear(in_dim, fc_dim), nn.ReLU(inplace=True)]
        self.pre_logits = nn.Sequential(*layers, nn.Dropout(dropout))
        self.head_hidden_size = fc_dim or in_dim
        self.fc8: nn.Module = ClassifierLinear(self.head_hidden_size, num_classes) if num_classes else nn.Identity()
        for m in self.pre_logits.modules():
            if isinstance(m, nn.Linear):  # followed by a ReLU: He-normal, as the paper's fc6/fc7
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        if isinstance(self.fc8, nn.Linear):
            nn.init.normal_(self.fc8.weight, 0.0, 0.01)
            nn.init.zeros_(self.fc8.bias)

    def get_classifier(self) -> nn.Module:
        return self.fc8

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pre_logits(torch.flatten(self.pool(x), 1))
        return x if pre_logits else self.fc8(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def backbone_errors(
    backbone: str,
    width: float = 1.0,
    fc_dim: int = 0,
    pretrained: bool = False,
    pretrained_file: Optional[str] = None,
    backbone_kwargs: Optional[dict] = None,
    sizes: Sequence[int] = (),
) -> list[str]:
    """What is wrong with these settings of a timm backbone, by config key (the start-up check): an unknown
    name, a width timm cannot apply, a missing weights file, input ``sizes`` the backbone cannot take. The
    model is built on the meta device (no memory, no weights) to find the map's sizes."""
    if not timm.is_model(backbone):
        return [f"model.backbone={backbone!r} is not a timm model name (timm.list_models() lists them)"]
    errors = []
    if fc_dim < 0:
        errors.append(f"model.fc_dim must be >= 0 for a timm backbone (0: pooling -> fc8); got {fc_dim}")
    if pretrained_file and not pretrained:
        errors.append(f"model.pretrained_file={pretrained_file} is given but model.pretrained=false: set it true")
    if pretrained_file and not os.path.isfile(pretrained_file):
        errors.append(f"model.pretrained_file={pretrained_file} is not a file")
    if pretrained and width != 1.0:
        errors.append(f"model.pretrained=true needs the backbone's own widths; got model.width={width}")
    try:
        kwargs = dict(backbone_kwargs or {})
        kwargs.update(width_kwargs(backbone, width, kwargs))
        with torch.device("meta"):
            model: Any = timm.create_model(backbone, num_classes=0, global_pool="", **kwargs)
    except (ValueError, TypeError, AssertionError) as err:
        return errors + [f"model.backbone={backbone} with model.width={width}, model.backbone_kwargs: {err}"]
    geometry = BackboneGeometry(backbone, int(model.feature_info[-1]["reduction"]), lambda: ForwardFeatures(model))
    side = 64
    try:  # a fixed-size backbone (ViT, Swin) refuses other sizes: the SPP and multi-size point is any size
        side = max(64, geometry.min_input_size(2))  # a 2x2 map or more (inception_v3 needs 75 px for one cell)
        out = model.forward_features(torch.empty(1, 3, side, side, device="meta"))
        out2 = model.forward_features(torch.empty(1, 3, 2 * side, 2 * side, device="meta"))
    except (AssertionError, RuntimeError, ValueError) as err:
        return errors + [
            f"model.backbone={backbone} does not take inputs of any size: "
            f"{str(err).splitlines()[0] if str(err) else type(err).__name__}; choose a convolutional backbone"
        ]
    # an (N, C, H, W) map keeps C and grows H, W with the input; channels-last or token outputs do not
    if out.dim() != 4 or out.shape[1] != out2.shape[1] or out.shape[-1] == out2.shape[-1]:
        errors.append(
            f"model.backbone={backbone}: its features are {tuple(out.shape)} at {side} px and {tuple(out2.shape)} at "
            f"{2 * side} px, not an (N, C, H, W) map (channels-last or token outputs are not supported)"
        )
    small = sorted({s for s in sizes if geometry.feature_size(s) < 1})
    if small:
        errors.append(
            f"input sides {small} are too small for model.backbone={backbone}: it needs >= {geometry.min_input_size(1)}"
        )
    return errors
