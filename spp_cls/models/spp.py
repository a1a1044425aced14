"""Spatial pyramid pooling (He et al., Sec. 2.3 and Appendix).

Each n x n level max-pools bin (i, j) over rows [floor(i*h/n), ceil((i+1)*h/n)) and columns
[floor(j*w/n), ceil((j+1)*w/n)): the paper's any-size (appendix) rule, which is also the bin rule of
adaptive max pooling. It is defined for every map of at least 1x1, including maps smaller than n (bins then
share cells) and non-square maps. The "window = ceil(a/n), stride = floor(a/n)" recipe of the paper's
training section is deliberately not used: it yields 9 bins instead of 6 at a = 10 (ZF-5 at 180 px).

Output layout: the levels in the configured order, each flattened channel-major (C x n x n), concatenated.
For levels (6, 3, 2, 1) and C channels that is [C*36 | C*9 | C*4 | C*1].
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


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


def bin_edges(size: int, bins: int) -> list[tuple[int, int]]:
    """Half-open [start, end) cell ranges of the floor/ceil rule along one axis."""
    return [((i * size) // bins, -((-(i + 1) * size) // bins)) for i in range(bins)]


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
            if torch.are_deterministic_algorithms_enabled():
                # adaptive_max_pool2d has no deterministic CUDA backward; slice maxima have one.
                return torch.cat([self._separable_level(x, n).flatten(1) for n in self.levels], dim=1)
        pooled = []
        for n in self.levels:
            pooled.append(F.adaptive_max_pool2d(x, n).flatten(1))
        return torch.cat(pooled, dim=1)

    @staticmethod
    def _separable_level(x: torch.Tensor, n: int) -> torch.Tensor:
        """Same bins as adaptive max pooling, as column maxima then row maxima (max is separable)."""
        h, w = x.shape[-2:]
        cols = torch.stack([x[..., s:e].amax(dim=-1) for s, e in bin_edges(w, n)], dim=-1)
        return torch.stack([cols[..., s:e, :].amax(dim=-2) for s, e in bin_edges(h, n)], dim=-2)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, bins={self.num_bins}"
