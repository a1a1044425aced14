"""LRN under autocast: both variants compute in float32 and hand back the input's dtype, so the layer a
bf16-mixed (GPU) run trains is the float32 (CPU) run's layer.

Computed in bfloat16, 1 + alpha * mean_sq rounds to exactly 1 whenever alpha * mean_sq is below 2^-8 (the
half-spacing of bfloat16 above 1), and the within-channel layer becomes the identity. The inputs here are
sized so that alpha * mean_sq lies between 2e-3 and 5e-3: mostly under that threshold, yet large enough that
the float32 result, rounded once to bfloat16, moves many values by an ulp (at alpha * mean_sq ~ 1e-3 the
normalisation is smaller than bfloat16's own rounding of the output, invisible either way).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spp_cls.models.lrn import AcrossChannelLRN, WithinChannelLRN, make_lrn


def loud_input(scale: float, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """(2, 16, 9, 11) values of magnitude ``scale`` x [0.7, 1.3], random signs, in ``dtype``."""
    generator = torch.Generator().manual_seed(0)
    magnitude = scale * (0.7 + 0.6 * torch.rand(2, 16, 9, 11, generator=generator))
    sign = torch.randint(0, 2, magnitude.shape, generator=generator) * 2 - 1
    return (magnitude * sign).to(dtype)


@pytest.mark.parametrize("mode, scale", [("within_channel", 8.0), ("across_channel", 120.0)])
def test_lrn_under_bf16_autocast_is_the_float32_layer_rounded_once(mode: str, scale: float) -> None:
    layer = make_lrn(mode)
    x = loud_input(scale)
    reference = layer(x.float())  # no autocast: float32 all through
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, reference.to(torch.bfloat16))
    changed = (out != x).float().mean().item()
    assert changed > 0.1  # the normalisation acts on the bf16 values, it is not rounded away


def test_within_channel_scale_is_below_the_bf16_threshold() -> None:
    """The test above works where bf16 arithmetic would drop the normalisation: alpha * mean_sq < 2^-8."""
    layer = WithinChannelLRN()
    x = loud_input(8.0).float()
    mean_sq = nn.functional.avg_pool2d(x * x, 3, stride=1, padding=1)[..., 1:-1, 1:-1]
    share_below = (layer.alpha * mean_sq < 2**-8).float().mean().item()
    assert share_below > 0.9
    assert 2e-3 < layer.alpha * mean_sq.min() and layer.alpha * mean_sq.max() < 5e-3


def test_float16_squares_do_not_overflow() -> None:
    """x * x overflows float16 above 256: computed in float16 the layer would return zeros."""
    layer = WithinChannelLRN()
    x = loud_input(400.0, torch.float16)
    with torch.autocast("cpu", dtype=torch.float16):
        out = layer(x)
    assert out.dtype == torch.float16 and out.isfinite().all()
    torch.testing.assert_close(out, layer(x.float()).half())


def test_across_channel_layer_is_still_a_local_response_norm() -> None:
    """Same module type and state as before (no parameters): checkpoints and timm tooling see no change."""
    layer = make_lrn("across_channel")
    assert isinstance(layer, (nn.LocalResponseNorm, AcrossChannelLRN)) and not layer.state_dict()
    x = loud_input(3.0, torch.float32)
    torch.testing.assert_close(layer(x), nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)(x), rtol=0, atol=0)
