"""One network class for all eight models: a Table 1 conv stack, then an SPP or a fixed-pool head.

The head is pool -> flatten -> fc6 -> ReLU -> dropout -> fc7 -> ReLU -> dropout -> fc8, as in the paper;
only the pooling differs between the SPP model and its no-SPP baseline. fc8 computes in float32 under autocast
(``ClassifierLinear``), so the logits, the loss and every top-k error come from float32 logits. The class
follows timm's model API (``forward_features``, ``forward_head``, ``reset_classifier``, ``get_classifier``,
``num_features``, ``feature_info``) so that timm tooling treats it like any timm model.
"""

# No "from __future__ import annotations": FX copies string annotations into traced code as names that
# TorchScript cannot resolve, which breaks scripting an FX-traced model (timm's FX + TorchScript tests).

from collections import OrderedDict
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from spp_cls.models.architectures import (
    BASELINE_BINS,
    BASELINE_POOLS,
    Architecture,
    ConvStage,
    PoolSpec,
    bin_window,
    get_architecture,
)
from spp_cls.models.lrn import IMAGENET_CAFFE_SCALE, autocast_enabled, make_lrn
from spp_cls.models.pooling import CeilMaxPool2d
from spp_cls.models.spp import SpatialPyramidPool, check_pyramid

INIT_MODES = ("kaiming", "gaussian")
SizeArg = Union[int, Sequence[int]]


def _pair(size: SizeArg) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def _scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


@torch.fx.has_side_effect
@torch.fx.wrap
def check_input_size(x: torch.Tensor, arch: str, fixed: Optional[tuple[int, int]], min_size: int) -> None:
    """Raise ValueError if ``x`` is not ``fixed`` (no-SPP models) or smaller than ``min_size`` on a side.

    Plain comparisons keep symbolic sizes symbolic: ``torch.export``/``torch.compile`` turn them into
    runtime guards (``int()`` would freeze a dynamic size to a constant). ``torch.fx.wrap`` records the call
    as one node of FX graphs, whose proxies cannot be compared, and ``has_side_effect`` keeps that node when
    feature extractors prune the graph, so traced modules still check their input.
    """
    height, width = x.shape[-2], x.shape[-1]
    if fixed is not None and (height != fixed[0] or width != fixed[1]):
        raise ValueError(
            f"{arch} (no SPP) was built for {fixed[0]}x{fixed[1]} inputs and got {height}x{width}; build it "
            f"with img_size=({height}, {width}) or use the SPP model, which takes any size"
        )
    if min(height, width) < min_size:
        raise ValueError(
            f"{arch}: input {height}x{width} is too small; its conv stack needs at least {min_size}x{min_size}"
        )


class ClassifierLinear(nn.Linear):
    """fc8: ``nn.Linear`` (same parameters and state) that computes in float32 under autocast.

    Under ``bf16-mixed`` autocast a linear layer returns bfloat16, whose 8 significant bits space logits of
    magnitude 4-8 by 1/32: the top classes of an image can share one value, and which of them counts as
    top-1 (or fifth) is then decided by class index, not by the network. One float32 layer of num_classes
    outputs is a small part of the network's work. Without autocast it is a plain linear layer in the weights'
    dtype (and so traces, scripts and exports as one).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():  # TorchScript compiles neither branch here: it has no autocast
            if autocast_enabled():
                with torch.autocast(x.device.type, enabled=False):
                    return F.linear(x.to(self.weight.dtype), self.weight, self.bias)
        return F.linear(x, self.weight, self.bias)


def _build_stage(
    stage: ConvStage, in_channels: int, out_channels: int, lrn: str, lrn_input_scale: float
) -> nn.Sequential:
    layers: "OrderedDict[str, nn.Module]" = OrderedDict()
    layers["conv"] = nn.Conv2d(in_channels, out_channels, stage.kernel, stage.stride, stage.padding)
    layers["relu"] = nn.ReLU(inplace=True)
    for op in stage.post:
        if op == "lrn":
            layers["lrn"] = make_lrn(lrn, lrn_input_scale)
        else:
            assert stage.pool is not None
            layers["pool"] = _max_pool(stage.pool)
    return nn.Sequential(layers)


def _max_pool(spec: PoolSpec) -> nn.Module:
    """Ceil-mode pools as ``CeilMaxPool2d``, which traces with symbolic sizes (see pooling.py)."""
    return CeilMaxPool2d(spec.kernel, spec.stride) if spec.ceil_mode else nn.MaxPool2d(spec.kernel, spec.stride)


class SppNet(nn.Module):
    """A paper network with an SPP head (``spp=True``) or its fixed-size no-SPP baseline.

    Args:
        arch: ``zf5``, ``convnet5``, ``overfeat5`` or ``overfeat7`` (or an ``Architecture``).
        num_classes: size of fc8; 0 removes fc8 so the model returns fc7 features.
        spp: replace the last pooling by spatial pyramid pooling.
        pyramid: SPP levels, in output order (SPP models only).
        img_size: the input size a no-SPP model is built for; it accepts exactly this size.
        baseline_pool: the no-SPP model's last pool (ignored with SPP): ``paper_bins`` pools the last conv map
            of ``img_size`` to the paper's 6x6 bins (at 224 px exactly Table 1's pool5: 3x3 stride 2 on 13x13,
            3x3 stride 3 on 18x18; at 112 px a 6x6 map passes unpooled), so that fc6 sees 36 x C values against
            SPP's 50 x C at any size; ``paper_window`` keeps Table 1's window at every size (2x2 bins at 112 px).
        width: multiplier on every conv's channel count (e.g. 0.25 to run the geometry small).
        fc_dim: width of fc6 and fc7 (4096 in the paper).
        dropout: dropout probability after fc6 and fc7.
        lrn: ``within_channel`` (the released Caffe ZF-5), ``across_channel`` (AlexNet) or ``none``.
        lrn_input_scale: 0-255 units in one unit of this network's input (255 x the normalisation's std): the
            LRN constants are for 0-255 input, so alpha is multiplied by its square (see ``lrn.py``). The default
            suits the ImageNet mean/std normalisation of timm's config; 1.0 applies Caffe's alpha unchanged.
        init: ``kaiming`` (He-normal, N(0, 0.01) for fc8) or ``gaussian`` (all N(0, 0.01), as AlexNet).
        global_pool: timm's switch; ``''`` drops the whole head (pooling and fc6-fc8) so the model returns
            the last conv map, ``None`` keeps the model's own pooling.
        in_chans: input channels.
    """

    def __init__(
        self,
        arch: Union[str, Architecture] = "zf5",
        num_classes: int = 1000,
        spp: bool = True,
        pyramid: Sequence[int] = (6, 3, 2, 1),
        img_size: SizeArg = 224,
        baseline_pool: str = "paper_bins",
        width: float = 1.0,
        fc_dim: int = 4096,
        dropout: float = 0.5,
        lrn: str = "within_channel",
        lrn_input_scale: float = IMAGENET_CAFFE_SCALE,
        init: str = "kaiming",
        global_pool: Optional[str] = None,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        self.arch = get_architecture(arch) if isinstance(arch, str) else arch
        if width <= 0 or fc_dim < 1 or num_classes < 0 or not 0.0 <= dropout < 1.0:
            raise ValueError(
                f"need width > 0, fc_dim >= 1, num_classes >= 0 and 0 <= dropout < 1; "
                f"got width={width}, fc_dim={fc_dim}, num_classes={num_classes}, dropout={dropout}"
            )
        if baseline_pool not in BASELINE_POOLS:
            raise ValueError(f"unknown baseline_pool {baseline_pool!r}; choose one of {list(BASELINE_POOLS)}")
        if init not in INIT_MODES:
            raise ValueError(f"unknown init {init!r}; choose one of {list(INIT_MODES)}")
        if global_pool not in (None, ""):
            raise ValueError(f"global_pool must be None (the model's own pooling) or '' (no head); got {global_pool!r}")
        self.spp = spp
        self.baseline_pool = baseline_pool
        self.pyramid = check_pyramid(pyramid) if spp else ()
        self.num_classes = num_classes
        self.fc_dim = fc_dim
        self.drop_rate = dropout
        self.grad_checkpointing = False

        stages: "OrderedDict[str, nn.Module]" = OrderedDict()
        self.feature_info: list[dict] = []
        channels, reduction = in_chans, 1
        for i, stage in enumerate(self.arch.stages, start=1):
            out_channels = _scaled(stage.channels, width)
            stages[f"conv{i}"] = _build_stage(stage, channels, out_channels, lrn, lrn_input_scale)
            reduction *= stage.reduction
            self.feature_info.append(dict(num_chs=out_channels, reduction=reduction, module=f"features.conv{i}"))
            channels = out_channels
        self.features = nn.Sequential(stages)
        self.num_features = channels
        self.head_hidden_size = fc_dim

        self.fixed_input_size: Optional[tuple[int, int]] = None if spp else _pair(img_size)
        self.min_input_size = self.arch.min_input_size()
        self._build_head(global_pool)
        self._init_weights(init)

    # ----------------------------------------------------------------------------------------- head
    def _pool_and_dim(self) -> tuple[nn.Module, int]:
        if self.spp:
            pool = SpatialPyramidPool(self.pyramid)
            return pool, pool.output_dim(self.num_features)
        assert self.fixed_input_size is not None
        h, w = (self.arch.feature_size(s) for s in self.fixed_input_size)
        bins = [self.arch.baseline_grid(s, self.baseline_pool) for s in self.fixed_input_size]
        if min(bins) < 1:
            need = "6x6" if self.baseline_pool == "paper_bins" else "1x1"
            raise ValueError(
                f"{self.arch.name}: input {self.fixed_input_size[0]}x{self.fixed_input_size[1]} leaves a {h}x{w} "
                f"conv map, too small for {need} bins of its last pooling (baseline_pool={self.baseline_pool!r}); "
                f"use a larger img_size or the SPP model"
            )
        return self._baseline_pool_layer(h, w), self.num_features * bins[0] * bins[1]

    def _baseline_pool_layer(self, h: int, w: int) -> nn.Module:
        """The fixed last pool of the no-SPP model for its h x w conv map: a plain max pool where one window
        gives the paper's bins (every size of the paper and the embedded scale's 6x6), else the SPP layer's one
        6x6 level (the appendix rule, which also exports to ONNX where adaptive pooling does not)."""
        if self.baseline_pool == "paper_window":
            return _max_pool(self.arch.baseline_pool)
        rows, cols = bin_window(h, BASELINE_BINS), bin_window(w, BASELINE_BINS)
        if rows is None or cols is None:
            return SpatialPyramidPool((BASELINE_BINS,))
        if rows == cols:
            return _max_pool(rows)
        return nn.MaxPool2d((rows.kernel, cols.kernel), (rows.stride, cols.stride))

    def _build_head(self, global_pool: Optional[str]) -> None:
        self.has_head = global_pool != ""
        if not self.has_head:
            self.pool: nn.Module = nn.Identity()
            self.pre_logits: nn.Module = nn.Identity()
            self.fc8: nn.Module = nn.Identity()
            self.num_classes = 0
            return
        self.pool, in_dim = self._pool_and_dim()
        self.pre_logits = nn.Sequential(
            OrderedDict(
                fc6=nn.Linear(in_dim, self.fc_dim),
                act6=nn.ReLU(inplace=True),
                drop6=nn.Dropout(self.drop_rate),
                fc7=nn.Linear(self.fc_dim, self.fc_dim),
                act7=nn.ReLU(inplace=True),
                drop7=nn.Dropout(self.drop_rate),
            )
        )
        self.fc8 = ClassifierLinear(self.fc_dim, self.num_classes) if self.num_classes > 0 else nn.Identity()

    def _init_weights(self, init: str) -> None:
        """``kaiming``: He-normal for every layer followed by a ReLU, N(0, 0.01) for fc8; ``gaussian``:
        N(0, 0.01) everywhere (AlexNet). Biases start at zero."""
        for m in self.modules():
            if not isinstance(m, (nn.Conv2d, nn.Linear)):
                continue
            if init == "kaiming" and m is not self.fc8:
                nn.init.kaiming_normal_(
                    m.weight, mode="fan_out" if isinstance(m, nn.Conv2d) else "fan_in", nonlinearity="relu"
                )
            else:
                nn.init.normal_(m.weight, 0.0, 0.01)
            assert m.bias is not None  # every conv and linear layer here has a bias
            nn.init.zeros_(m.bias)

    def get_classifier(self) -> nn.Module:
        return self.fc8

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """Replace fc8 (``num_classes=0``: no fc8); ``global_pool=''`` removes the head entirely."""
        if global_pool == "":
            self._build_head("")
            return
        if global_pool is not None:
            raise ValueError(f"global_pool must be None or ''; got {global_pool!r}")
        if not self.has_head:
            raise ValueError("the head was removed with global_pool=''; rebuild the model to get it back")
        self.num_classes = num_classes
        self.fc8 = ClassifierLinear(self.fc_dim, num_classes) if num_classes > 0 else nn.Identity()

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        if enable:
            raise NotImplementedError("gradient checkpointing is not supported by spp-cls models")

    # -------------------------------------------------------------------------------------- forward
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            fixed = self.fixed_input_size if self.has_head else None
            check_input_size(x, self.arch.name, fixed, self.min_input_size)
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if not self.has_head:
            return x
        x = self.pre_logits(torch.flatten(self.pool(x), 1))
        return x if pre_logits else self.fc8(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
