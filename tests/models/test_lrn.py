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

from spp_cls.models import SppNet
from spp_cls.models.lrn import IMAGENET_CAFFE_SCALE, AcrossChannelLRN, WithinChannelLRN, caffe_input_scale, make_lrn


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


# ------------------------------------------------------------------------------ alpha for normalised input
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def normalised_images(count: int, size: int, seed: int) -> torch.Tensor:
    """Smooth colour fields with fine noise in [0, 1], normalised as the data pipeline does (mean/std): the
    scale of real input, which the LRN's published constants (for 0-255 input) do not expect."""
    generator = torch.Generator().manual_seed(seed)
    low = torch.rand(count, 3, 8, 8, generator=generator)
    x = nn.functional.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)
    x = (x.clamp(0, 1) + 0.1 * torch.rand(count, 3, size, size, generator=generator)).clamp(0, 1)
    return (x - MEAN) / STD


def lrn_effects(model: nn.Module, x: torch.Tensor) -> list[float]:
    """|LRN(a) - a| / |a| of conv1's and conv2's LRN layers on the batch x."""
    effects: list[float] = []
    layers = (model.features.conv1.lrn, model.features.conv2.lrn)
    hooks = [
        m.register_forward_hook(lambda _, i, o: effects.append(((o - i[0]).norm() / i[0].norm()).item()))
        for m in layers
    ]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return effects


@pytest.mark.parametrize("mode", ["within_channel", "across_channel"])
def test_rescaled_alpha_on_scaled_input_is_the_published_layer_scaled(mode: str) -> None:
    """LRN(x / s; alpha s^2) = LRN(x; alpha) / s: on input normalised by s, the rescaled layer acts as the
    published one acts on 0-255 input."""
    x = loud_input(8.0 * IMAGENET_CAFFE_SCALE).float()  # activations at the 0-255 scale
    published, rescaled = make_lrn(mode), make_lrn(mode, IMAGENET_CAFFE_SCALE)
    torch.testing.assert_close(rescaled(x / IMAGENET_CAFFE_SCALE), published(x) / IMAGENET_CAFFE_SCALE)


def test_caffe_input_scale_follows_the_std() -> None:
    assert caffe_input_scale([0.229, 0.224, 0.225]) == pytest.approx(IMAGENET_CAFFE_SCALE) == pytest.approx(57.63)
    assert caffe_input_scale([1 / 255] * 3) == pytest.approx(1.0)  # 0-255 input minus the mean: Caffe's own


def test_the_lrn_acts_on_normalised_input_at_initialisation_and_after_training() -> None:
    """Measured on ZF-5 (1/8 width, 112 px, seed 0), the rescaled LRN changes conv1's activations by ~20 % and
    conv2's by ~6-7 % at initialisation and after 20 SGD steps; the published alpha on the same input changes
    them by < 1e-4 (an LRN in name only, the behaviour before the rescaling)."""
    torch.manual_seed(0)
    model = SppNet("zf5", num_classes=12, width=0.125, fc_dim=64)
    inert = SppNet("zf5", num_classes=12, width=0.125, fc_dim=64, lrn_input_scale=1.0)
    inert.load_state_dict(model.state_dict())
    probe = normalised_images(8, 112, seed=100)
    assert min(lrn_effects(model, probe)) > 0.02
    assert max(lrn_effects(inert, probe)) < 1e-3
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    labels = torch.randint(0, 12, (8,), generator=torch.Generator().manual_seed(0))
    for step in range(20):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(normalised_images(8, 112, seed=step)), labels).backward()
        optimizer.step()
    assert min(lrn_effects(model, probe)) > 0.02


@pytest.mark.parametrize("mode", ["within_channel", "across_channel"])
def test_rescaled_lrn_under_bf16_autocast_is_the_float32_layer_rounded_once(mode: str) -> None:
    """The layer as the networks build it (alpha for normalised input) on conv1's bf16 output under autocast."""
    torch.manual_seed(0)
    conv1 = SppNet("zf5", num_classes=12, width=0.125, fc_dim=64).features.conv1
    layer = make_lrn(mode, IMAGENET_CAFFE_SCALE)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        activations = conv1.relu(conv1.conv(normalised_images(2, 112, seed=0)))
        out = layer(activations)
    assert activations.dtype == out.dtype == torch.bfloat16
    assert torch.equal(out, layer(activations.float()).to(torch.bfloat16))
    moved = (out != activations)[activations > 0].float().mean().item()
    assert moved > 0.5  # it acts in bf16: most positive activations change
