"""Spatial pyramid pooling (He et al., Sec. 2.3 and Appendix).

Each n x n level max-pools bin (i, j) over rows [floor(i*h/n), ceil((i+1)*h/n)) and columns
[floor(j*w/n), ceil((j+1)*w/n)): the paper's any-size (appendix) rule, which is also the bin rule of
adaptive max pooling. It is defined for every map of at least 1x1, including maps smaller than n (bins then
share cells) and non-square maps. The "window = ceil(a/n), stride = floor(a/n)" recipe of the paper's
training section is deliberately not used: it yields 9 bins instead of 6 at a = 10 (ZF-5 at 180 px).

Output layout: the levels in the configured order, each flattened channel-major (C x n x n), concatenated.
For levels (6, 3, 2, 1) and C channels that is [C*36 | C*9 | C*4 | C*1].

Two computations of the same bins: eager mode uses ``adaptive_max_pool2d`` (the fastest kernel). Graph
capture (``torch.compile``, ``torch.export``, ONNX) and deterministic mode use ``masked_pyramid``, bin
masks built from the map's size: ONNX has no adaptive max pooling, inductor specialises it on the map size
(one recompile per size), and its CUDA backward is not deterministic. Max is exact, so both give identical
values; the masked form holds a (sum of levels) times larger temporary of the map.
"""

from __future__ import annotations

from typing import Sequence, Union, cast

import torch
import torch.nn.functional as F
from torch import nn

Size = Union[int, torch.SymInt]


def check_pyramid(levels: Sequence[int]) -> tuple[int, ...]:
    """Return the levels as a tuple, or raise ValueError naming what is wrong with them."""
    levels = tuple(levels)
    if not levels:
        raise ValueError("pyramid must have at least one level, e.g. [6, 3, 2, 1]")
    for n in levels:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"pyramid levels must be positive integers; got {list(levels)}")
    if len(set(levels)) != len(levels):
        raise ValueError(f"pyramid levels must be distinct; got {list(levels)}")
    return levels


def bin_bounds(size: Size, bins: int, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Start and (exclusive) end of each bin along one axis, as tensors so that a symbolic size stays symbolic."""
    i = torch.arange(bins, device=device)
    # a tensor times a SymInt is a tensor (torch's stubs say SymInt)
    return cast(torch.Tensor, (i * size) // bins), cast(torch.Tensor, ((i + 1) * size + bins - 1) // bins)


def _bin_masks(size: Size, levels: Sequence[int], device: torch.device) -> torch.Tensor:
    """(sum(levels), size) booleans: row k marks the cells of the k-th bin, the levels' bins one after another."""
    bounds = [bin_bounds(size, n, device) for n in levels]
    start = torch.cat([s for s, _ in bounds])[:, None]
    end = torch.cat([e for _, e in bounds])[:, None]
    cells = torch.arange(size, device=device)
    return (cells >= start) & (cells < end)


def _pool_last_axis(x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """(..., a) -> (..., bins): the maximum over each mask row."""
    return torch.where(masks, x.unsqueeze(-2), float("-inf")).amax(dim=-1)


def masked_pyramid(x: torch.Tensor, levels: Sequence[int]) -> torch.Tensor:
    """The pyramid from bin masks built on the map size: every column bin of every level, then every row bin,
    then level n's n x n block of that grid (the other blocks pair bins of different levels and are unused).
    Besides the map's own sides no size is derived from them, which keeps symbolic-shape tracing fast."""
    columns = _pool_last_axis(x, _bin_masks(x.shape[-1], levels, x.device)).transpose(-1, -2)
    grid = _pool_last_axis(columns, _bin_masks(x.shape[-2], levels, x.device)).transpose(-1, -2)
    pooled, offset = [], 0
    for n in levels:
        pooled.append(grid[..., offset : offset + n, offset : offset + n].flatten(1))
        offset += n
    return torch.cat(pooled, dim=1)


class SpatialPyramidPool(nn.Module):
    """Max-pool a feature map of any size into a fixed-length vector of C * sum(n^2) values."""

    def __init__(self, levels: Sequence[int] = (6, 3, 2, 1)) -> None:
        super().__init__()
        self.levels: list[int] = list(check_pyramid(levels))

    @property
    def num_bins(self) -> int:
        return sum(n * n for n in self.levels)

    def output_dim(self, channels: int) -> int:
        return channels * self.num_bins

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            if torch.compiler.is_compiling() or torch.are_deterministic_algorithms_enabled():
                return masked_pyramid(x, self.levels)
        pooled = []
        for n in self.levels:
            pooled.append(F.adaptive_max_pool2d(x, n).flatten(1))
        return torch.cat(pooled, dim=1)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, bins={self.num_bins}"
