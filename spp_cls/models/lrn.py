"""Local response normalisation variants for the paper's conv stacks.

The paper does not give its LRN settings. The authors' released ZF-5 prototxt uses Caffe's WITHIN_CHANNEL
mode (3x3 spatial window inside each channel, alpha 5e-5, beta 0.75), which ``nn.LocalResponseNorm`` cannot
express (it normalises across channels), hence ``WithinChannelLRN``. ``across_channel`` is AlexNet's
setting [Krizhevsky et al.: size 5, alpha 1e-4, beta 0.75, k 2].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LRN_MODES = ("within_channel", "across_channel", "none")


class WithinChannelLRN(nn.Module):
    """x / (1 + alpha * mean_{size x size}(x^2))^beta, the window zero-padded as in Caffe."""

    def __init__(self, size: int = 3, alpha: float = 5e-5, beta: float = 0.75) -> None:
        super().__init__()
        self.size, self.alpha, self.beta = size, alpha, beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean_sq = F.avg_pool2d(x * x, self.size, stride=1, padding=self.size // 2, count_include_pad=True)
        return x * (1.0 + self.alpha * mean_sq).pow(-self.beta)

    def extra_repr(self) -> str:
        return f"size={self.size}, alpha={self.alpha}, beta={self.beta}"


def make_lrn(mode: str) -> nn.Module:
    """Build the LRN layer for ``mode`` (one of LRN_MODES)."""
    if mode == "within_channel":
        return WithinChannelLRN()
    if mode == "across_channel":
        return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)
    if mode == "none":
        return nn.Identity()
    raise ValueError(f"unknown lrn mode {mode!r}; choose one of {list(LRN_MODES)}")
