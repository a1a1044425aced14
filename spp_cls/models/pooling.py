"""Ceil-mode max pooling (ZF-5's pool1 and pool2) that traces with symbolic sizes.

``MaxPool2d(ceil_mode=True)`` decides per input size whether a last, partial window exists; traced with a
symbolic size that decision becomes a guard on the map's parity (``torch.compile`` then compiles once for
odd and once for even maps, and ``torch.export``'s range checker cannot solve it). Under graph capture the
layer pads the right and bottom by ``stride - 1`` cells of -inf and pools in floor mode instead: the same
windows for every size, with no decision, since ceil((a - k) / s) + 1 == floor((a + s - 1 - k) / s) + 1 and
-inf never wins a maximum. (PyTorch's ceil mode also drops a window that would start in the padding, which
cannot happen when kernel >= stride.) Eager mode keeps the native kernel, which needs no padded copy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CeilMaxPool2d(nn.Module):
    """``nn.MaxPool2d(kernel, stride, ceil_mode=True)`` for kernel >= stride and no padding."""

    def __init__(self, kernel: int, stride: int) -> None:
        super().__init__()
        if kernel < stride:
            raise ValueError(f"CeilMaxPool2d needs kernel >= stride; got kernel {kernel}, stride {stride}")
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            if torch.compiler.is_compiling():
                extra = self.stride - 1
                padded = F.pad(x, (0, extra, 0, extra), value=float("-inf"))
                return F.max_pool2d(padded, self.kernel, self.stride)
        return F.max_pool2d(x, self.kernel, self.stride, ceil_mode=True)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel}, stride={self.stride}, ceil_mode=True"
