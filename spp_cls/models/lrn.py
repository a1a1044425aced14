"""Local response normalisation variants for the paper's conv stacks.

The paper does not give its LRN settings. The authors' released ZF-5 prototxt uses Caffe's WITHIN_CHANNEL
mode (3x3 spatial window inside each channel, alpha 5e-5, beta 0.75), which ``nn.LocalResponseNorm`` cannot
express (it normalises across channels), hence ``WithinChannelLRN``. ``across_channel`` is AlexNet's
setting [Krizhevsky et al.: size 5, alpha 1e-4, beta 0.75, k 2].

Both sets of constants are for networks fed 0-255 pixels minus the mean (Caffe, cuda-convnet). Fed images
normalised by a std of about 0.226 (x 255 = 57.6 pixel levels), the same constants act on activations 57.6
times smaller, whose squares are 3,300 times smaller: the layer then changes its input by about 1e-5 of its
size and is the identity in all but name. Since LRN(x / s; alpha * s^2) = LRN(x; alpha) / s for both
variants, multiplying alpha by ``input_scale ** 2`` (``input_scale``: 0-255 units in one unit of the
network's input) makes the layer act on normalised input exactly as the original acts on 0-255 input, while
the rest of the pipeline keeps its normalisation. (With zero biases the whole conv stack up to the LRN is
positively homogeneous, so at initialisation the rescaled network computes the Caffe network's function
divided by s; only the learned biases' scale differs.)

Both compute in float32 whatever the input's dtype and whether autocast is on. The denominators are
1 + alpha * (mean of squares) with alpha of order 1e-4: in bfloat16 (8 significant bits) or float16 (11) that
sum rounds to exactly 1 for the activations a network has, so under ``bf16-mixed`` autocast the layer would
silently be the identity, and the network trained on a GPU would not be the one trained in float32 on a CPU.
The result is handed back in the input's dtype, so the layers around it see no change of precision.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

LRN_MODES = ("within_channel", "across_channel", "none")
#: one unit of input normalised by ImageNet's std (0.229, 0.224, 0.225: timm's and torchvision's) in 0-255 units
IMAGENET_CAFFE_SCALE = 255.0 * (0.229 + 0.224 + 0.225) / 3


def caffe_input_scale(std: Sequence[float]) -> float:
    """0-255 pixel units in one unit of input normalised as ``(x / 255 - mean) / std`` (the channels' mean std)."""
    values = [float(s) for s in std]
    if not values or min(values) <= 0:
        raise ValueError(f"std must be positive numbers; got {values}")
    return 255.0 * sum(values) / len(values)


def autocast_enabled() -> bool:
    """Whether autocast is on for CUDA or the CPU (the devices this project trains on).

    Asked per device name rather than of ``x.device``: under FX tracing the input is a proxy whose device is
    not known, and tracing never runs under autocast anyway.
    """
    return torch.is_autocast_enabled("cuda") or torch.is_autocast_enabled("cpu")


class WithinChannelLRN(nn.Module):
    """x / (1 + alpha * mean_{size x size}(x^2))^beta, the window zero-padded as in Caffe, computed in float32."""

    def __init__(self, size: int = 3, alpha: float = 5e-5, beta: float = 0.75) -> None:
        super().__init__()
        self.size, self.alpha, self.beta = size, alpha, beta

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        mean_sq = F.avg_pool2d(x * x, self.size, stride=1, padding=self.size // 2, count_include_pad=True)
        return x * (1.0 + self.alpha * mean_sq).pow(-self.beta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():  # TorchScript compiles neither branch here: it has no autocast
            if autocast_enabled():
                with torch.autocast(x.device.type, enabled=False):  # else avg_pool2d runs in bf16 again
                    return self._normalise(x.float()).to(x.dtype)
        return self._normalise(x.float()).to(x.dtype)

    def extra_repr(self) -> str:
        return f"size={self.size}, alpha={self.alpha}, beta={self.beta}"


class AcrossChannelLRN(nn.LocalResponseNorm):
    """``nn.LocalResponseNorm`` computed in float32 (see the module docstring); no parameters, same state."""

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        return F.local_response_norm(x, self.size, self.alpha, self.beta, self.k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            if autocast_enabled():
                with torch.autocast(x.device.type, enabled=False):
                    return self._normalise(x.float()).to(x.dtype)
        return self._normalise(x.float()).to(x.dtype)


def make_lrn(mode: str, input_scale: float = 1.0) -> nn.Module:
    """Build the LRN layer for ``mode`` (one of LRN_MODES), its alpha rescaled for an input in which one unit is
    ``input_scale`` 0-255 pixel levels (1.0: the published constants unchanged)."""
    if input_scale <= 0:
        raise ValueError(f"lrn input_scale must be > 0; got {input_scale}")
    gain = float(input_scale) ** 2
    if mode == "within_channel":
        return WithinChannelLRN(3, alpha=5e-5 * gain, beta=0.75)
    if mode == "across_channel":
        return AcrossChannelLRN(5, alpha=1e-4 * gain, beta=0.75, k=2.0)
    if mode == "none":
        return nn.Identity()
    raise ValueError(f"unknown lrn mode {mode!r}; choose one of {list(LRN_MODES)}")
