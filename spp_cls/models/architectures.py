"""The conv stacks of the paper's Table 1 as data, and the arithmetic of their feature-map sizes.

Keeping the layers as plain specs lets one piece of code build the networks (``network.py``), check an input
size before training starts (config validation), and print the map sizes in the docs and tests.

Paddings are not printed in the paper ("adjusted to produce the expected output feature map size"); the
values below reproduce every map size of Table 1 at 224 px and ZF-5's 10x10 at 180 px. At 180 px, the
multi-size training's second size, the last conv maps are:

* 13x13 -> 10x10 for ZF-5 (the paper's figure) and Convnet*-5 (not stated in the paper), a ratio of 0.77;
* 18x18 -> 14x14 for Overfeat-5/7 (not stated in the paper; conv1 padding 3 would give 15x15), 0.78.

* ZF-5 follows the authors' released Caffe prototxt: conv1 pad 1, conv2 pad 0, pool1/pool2 in ceil mode.
* Convnet*-5: conv1 pad 2, conv2 pad 2, conv3-5 pad 1, floor-mode pools.
* Overfeat-5/7: conv1 pad 0, conv2 pad 2, conv3+ pad 1, floor-mode pools.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class PoolSpec:
    """A max-pooling layer."""

    kernel: int
    stride: int
    ceil_mode: bool = False

    def output_size(self, size: int) -> int:
        """PyTorch's MaxPool2d output length (0 when the input is smaller than the window)."""
        if size < self.kernel:
            return 0
        span = size - self.kernel
        out = (math.ceil(span / self.stride) if self.ceil_mode else span // self.stride) + 1
        if self.ceil_mode and (out - 1) * self.stride >= size:
            out -= 1  # PyTorch drops a last window that would start outside the input
        return out


#: the no-SPP networks of Table 1 end in a pool producing 6x6 bins (fc6 sees 36 x channels values)
BASELINE_BINS = 6
#: how a no-SPP network's last pool is built at an input size other than the paper's (see ``baseline_grid``)
BASELINE_POOLS = ("paper_bins", "paper_window")


def bin_window(size: int, bins: int) -> Optional[PoolSpec]:
    """The fixed (kernel, stride) window that cuts a side of ``size`` cells into ``bins`` bins exactly as the
    paper's appendix rule (bin i spans floor(i * size / bins) to ceil((i + 1) * size / bins), PyTorch's adaptive
    pooling) does, or None when those bins are not evenly spaced (e.g. 6 bins on 8 or 10 cells).

    13 cells -> 3x3 stride 2 and 18 -> 3x3 stride 3 (Table 1's pool5 of ZF-5/Convnet*-5 and Overfeat), 6 -> 1x1.
    """
    starts = [i * size // bins for i in range(bins)]
    lengths = {-((-(i + 1) * size) // bins) - start for i, start in enumerate(starts)}
    steps = {b - a for a, b in zip(starts, starts[1:])} or {1}
    if len(lengths) != 1 or len(steps) != 1:
        return None
    window = PoolSpec(lengths.pop(), steps.pop())
    return window if window.output_size(size) == bins else None


@dataclass(frozen=True)
class ConvStage:
    """conv -> ReLU, then LRN and/or max pooling in the order of ``post``."""

    channels: int
    kernel: int
    stride: int = 1
    padding: int = 0
    post: tuple[str, ...] = ()  # items: "lrn", "pool"
    pool: PoolSpec | None = None

    @property
    def reduction(self) -> int:
        """Stride of the whole stage (conv stride times pool stride)."""
        return self.stride * (self.pool.stride if self.pool is not None and "pool" in self.post else 1)

    def output_size(self, size: int) -> int:
        padded = size + 2 * self.padding
        if size <= 0 or padded < self.kernel:
            return 0
        out = (padded - self.kernel) // self.stride + 1
        if "pool" in self.post:
            assert self.pool is not None
            out = self.pool.output_size(out)
        return out


@dataclass(frozen=True)
class Architecture:
    """A conv stack plus the fixed pooling that ends its no-SPP baseline (pool5 or pool7)."""

    name: str
    title: str
    stages: tuple[ConvStage, ...]
    baseline_pool: PoolSpec

    @property
    def out_channels(self) -> int:
        return self.stages[-1].channels

    @property
    def total_stride(self) -> int:
        """Product of all strides up to the last conv (S of the paper's appendix)."""
        return math.prod(stage.reduction for stage in self.stages)

    @property
    def first_center(self) -> float:
        """Image position (pixel-index coordinates: pixel i is centred at i) of the receptive-field centre of
        last-conv cell 0; cell j is centred at ``first_center + total_stride * j``. Each conv or pool of
        kernel k, padding p moves it by ((k - 1) / 2 - p) times the stride before it; 0 for the appendix's
        deployment nets (padding floor(k / 2) everywhere); 20 for ZF-5, 15 for Convnet*-5, 8 for Overfeat here."""
        center, jump = 0.0, 1
        for stage in self.stages:
            center += ((stage.kernel - 1) / 2 - stage.padding) * jump
            jump *= stage.stride
            if "pool" in stage.post:
                assert stage.pool is not None
                center += (stage.pool.kernel - 1) / 2 * jump
                jump *= stage.pool.stride
        return center

    def stage_sizes(self, size: int) -> list[int]:
        """Side length after each stage for a square input of side ``size`` (0 once the map has vanished)."""
        sizes = []
        for stage in self.stages:
            size = stage.output_size(size)
            sizes.append(size)
        return sizes

    def feature_size(self, size: int) -> int:
        """Side of the last conv map for an input side ``size``; 0 if the input is too small."""
        return self.stage_sizes(size)[-1]

    def baseline_grid(self, size: int, baseline_pool: str = "paper_bins") -> int:
        """Bins per side of the no-SPP last pool for an input side ``size`` (0 if it cannot pool the map).

        ``paper_bins``: the paper's 6 whenever the last conv map has at least 6 cells a side; ``paper_window``:
        what Table 1's fixed window (``baseline_pool``) leaves of the map, 6 only at the paper's 224 px.
        """
        side = self.feature_size(size)
        if baseline_pool == "paper_window":
            return self.baseline_pool.output_size(side)
        if baseline_pool != "paper_bins":
            raise ValueError(f"unknown baseline_pool {baseline_pool!r}; choose one of {list(BASELINE_POOLS)}")
        return BASELINE_BINS if side >= BASELINE_BINS else 0

    def min_input_size(self, map_size: int = 1) -> int:
        """Smallest input side that leaves a ``map_size`` x ``map_size`` map after the last conv."""
        size = 1
        while self.feature_size(size) < map_size:
            size += 1
        return size


_LRN_POOL = ("lrn", "pool")
_ZF_POOL = PoolSpec(3, 2, ceil_mode=True)
_POOL_3_2 = PoolSpec(3, 2)

ZF5 = Architecture(
    name="zf5",
    title="ZF-5",
    stages=(
        ConvStage(96, 7, stride=2, padding=1, post=_LRN_POOL, pool=_ZF_POOL),
        ConvStage(256, 5, stride=2, padding=0, post=_LRN_POOL, pool=_ZF_POOL),
        ConvStage(384, 3, padding=1),
        ConvStage(384, 3, padding=1),
        ConvStage(256, 3, padding=1),
    ),
    baseline_pool=_POOL_3_2,
)

CONVNET5 = Architecture(
    name="convnet5",
    title="Convnet*-5",
    stages=(
        ConvStage(96, 11, stride=4, padding=2, post=("lrn",)),
        ConvStage(256, 5, padding=2, post=_LRN_POOL, pool=_POOL_3_2),
        ConvStage(384, 3, padding=1, post=("pool",), pool=_POOL_3_2),
        ConvStage(384, 3, padding=1),
        ConvStage(256, 3, padding=1),
    ),
    baseline_pool=_POOL_3_2,
)

_OVERFEAT_HEAD = (
    ConvStage(96, 7, stride=2, padding=0, post=("pool", "lrn"), pool=PoolSpec(3, 3)),
    ConvStage(256, 5, padding=2, post=("pool",), pool=PoolSpec(2, 2)),
)
_OVERFEAT_CONV = ConvStage(512, 3, padding=1)

OVERFEAT5 = Architecture(
    name="overfeat5",
    title="Overfeat-5",
    stages=_OVERFEAT_HEAD + (_OVERFEAT_CONV,) * 3,
    baseline_pool=PoolSpec(3, 3),
)

OVERFEAT7 = Architecture(
    name="overfeat7",
    title="Overfeat-7",
    stages=_OVERFEAT_HEAD + (_OVERFEAT_CONV,) * 5,
    baseline_pool=PoolSpec(3, 3),
)

ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in (ZF5, CONVNET5, OVERFEAT5, OVERFEAT7)}


def get_architecture(name: str) -> Architecture:
    """Look up an architecture by name with an error that lists the valid names."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; choose one of {sorted(ARCHITECTURES)}") from None
