"""The last feature map's geometry of a timm backbone (``MapGeometry``), for the window -> feature-map mapping
of the multi-view protocol, the export's smallest dynamic side and the start-up size checks.

timm states each feature map's total stride (``feature_info``: ``reduction``) but not where the receptive field
of cell 0 is centred, which the mapping also needs (the paper's "proper offset"); the paper's networks compute
it from their layer specs (``Architecture.first_center``), which a backbone of any family does not have.
It is measured instead: the gradient of one column of last-map cells with respect to a random input is
non-zero exactly on the pixels that column depends on, and the midpoint of that support is the column's
centre, ``first_center + stride * j``. Every conv and pool window is centred on its own output cell, so the
support of every path through the network has the same midpoint; the input is widened until the support no
longer touches the image's borders (zero padding would cut it). Only the horizontal axis is measured: the
backbones here are built of square, symmetrically padded windows.

Residual branches are switched off for the measurement: timm initialises their last scale to zero (ResNet's
and RegNet's last norm of a branch) or nearly (ConvNeXt's 1e-6 layer scales, set to zero here), so the
support measured is that of the main path (stem, shortcuts, downsampling layers), which places the cells. It
is small, where the full receptive field of a deep ConvNeXt spans thousands of pixels (and the products of its
1e-6 scales would underflow unevenly in float32). A backbone whose paths are centred differently
(resnet10t's average-pooling shortcuts: 2x2 windows, half a cell off its 3x3 convs) gets its main path's centre.

Global context is cut too: a squeeze-excitation gate (EfficientNet's and MobileNetV3's, on the main path) pools
the whole map, so every cell would depend on every pixel and no width would hold the support. For the
measurement, every conv or linear layer whose input has no spatial extent (a global pooling's output: the gate's
first layer) or is not an image map (ECA's 1-d conv) sees its input detached: the gate still scales the map, as a
constant, and the support is again that of the windows that place the cells.

Map sizes are computed on a copy of the backbone on the meta device (shapes without memory or arithmetic).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional

import torch
from torch import nn

#: the widest input the offset measurement tries before giving up
MAX_MEASURE_WIDTH = 8192


def _detach_global_context(module: nn.Module, args: tuple[Any, ...]) -> Optional[tuple[Any, ...]]:
    """Forward pre-hook: a layer's input detached when it is a global pooling's output or not an image map."""
    x = args[0] if args else None
    if isinstance(x, torch.Tensor) and (x.dim() != 4 or x.shape[-1] * x.shape[-2] == 1):
        return (x.detach(), *args[1:])
    return None


def measure_first_center(features: nn.Module, stride: int, in_chans: int, height: int) -> float:
    """Image x of the receptive-field centre of last-map column 0, measured on ``features`` (put in eval mode,
    its residual branches and global context cut: the module docstring says why) with inputs ``height`` pixels
    high, widened from 16 strides until the measured support is inside them."""
    features.eval()
    with torch.no_grad():
        for p in features.parameters():
            if p.abs().max() < 1e-3:  # ConvNeXt's 1e-6 layer scales: its residual branches off, as timm's
                p.zero_()  # zero-initialised last norms of ResNet's and RegNet's branches are
    for layer in features.modules():
        if isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            layer.register_forward_pre_hook(_detach_global_context)  # a throwaway copy: the hooks stay on it
    width = 16 * stride
    torch.manual_seed(0)
    while width <= MAX_MEASURE_WIDTH:
        with torch.inference_mode(False), torch.enable_grad():
            x = torch.randn(8, in_chans, height, width, requires_grad=True)  # 8: no column dead in all of them
            out = features(x)
            column = out.shape[-1] // 2
            out[..., column].sum().backward()
            assert x.grad is not None
            support = x.grad.abs().sum(dim=(0, 1, 2)).nonzero().flatten()
        if support.numel() == 0:
            raise ValueError("the last map does not depend on the input (all gradients are zero); cannot measure")
        left, right = int(support.min()), int(support.max())
        if left > 0 and right < width - 1:
            return (left + right) / 2 - stride * column
        width *= 2
    raise ValueError(f"the receptive field of the last map is wider than {MAX_MEASURE_WIDTH} px; cannot measure it")


class BackboneGeometry:
    """``MapGeometry`` of a timm backbone's last feature map.

    Args:
        name: the backbone's timm name.
        total_stride: the last map's ``reduction`` in timm's ``feature_info``.
        build: builds the backbone's feature extractor afresh (random weights); called on the meta device for
            map sizes, and once on the CPU, when ``first_center`` is first asked for, to measure it.
        in_chans: input channels.
    """

    def __init__(self, name: str, total_stride: int, build: Callable[[], nn.Module], in_chans: int = 3) -> None:
        self.name = self.title = name
        self.total_stride = total_stride
        self._build = build
        self.in_chans = in_chans

    @functools.cached_property
    def _meta(self) -> nn.Module:
        with torch.device("meta"):
            return self._build().eval()

    @functools.cached_property
    def first_center(self) -> float:
        """Image position (pixel i centred at i) of the receptive-field centre of last-map cell 0, measured."""
        height = max(self.min_input_size(1), self.total_stride)  # a few rows, so that ReLUs cannot close every path
        with torch.inference_mode(False):  # asked during a test loop: the copy's weights must take gradients
            return measure_first_center(self._build(), self.total_stride, self.in_chans, height)

    @functools.lru_cache(maxsize=64)  # noqa: B019  # one geometry per network; sizes repeat (crop, window)
    def feature_size(self, size: int) -> int:
        """Side of the last map for a square input of side ``size``; 0 if the backbone cannot take it."""
        try:
            out = self._meta(torch.empty(1, self.in_chans, size, size, device="meta"))
        except (RuntimeError, ValueError):
            return 0
        return int(out.shape[-1])

    @functools.lru_cache(maxsize=8)  # noqa: B019
    def min_input_size(self, map_size: int = 1) -> int:
        """Smallest input side that leaves a ``map_size`` x ``map_size`` map (bisection: sizes grow with input)."""
        high = self.total_stride * map_size
        while self.feature_size(high) < map_size:
            high *= 2
        low = 0  # feature_size(low) < map_size <= feature_size(high)
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (low, middle) if self.feature_size(middle) >= map_size else (middle, high)
        return high

    def __repr__(self) -> str:
        return f"BackboneGeometry({self.name!r}, total_stride={self.total_stride})"
