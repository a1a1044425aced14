"""Behaviour of SppNet beyond timm's generic API: input sizes, widths, LRN, init, errors."""

from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

from spp_cls.models import SppNet, create_classifier
from spp_cls.models.lrn import WithinChannelLRN, make_lrn


def test_spp_model_takes_odd_sizes_and_aspect_ratios() -> None:
    model = timm.create_model("overfeat7_spp", num_classes=5, width=0.25, fc_dim=32).eval()
    for h, w in ((197, 311), (311, 197), (224, 224), (120, 400)):
        assert model(torch.randn(1, 3, h, w)).shape == (1, 5)


def test_no_spp_model_accepts_only_its_size() -> None:
    model = timm.create_model("convnet5", num_classes=5, width=0.25, fc_dim=32, img_size=180).eval()
    assert model.pre_logits.fc6.in_features == 64 * 6 * 6  # 10x10 conv5 -> the paper's 6x6 bins
    assert model(torch.randn(1, 3, 180, 180)).shape == (1, 5)
    with pytest.raises(ValueError, match=r"built for 180x180 inputs and got 224x224"):
        model(torch.randn(1, 3, 224, 224))


def test_no_spp_model_too_small_for_its_last_pooling() -> None:
    with pytest.raises(ValueError, match="too small for 6x6 bins"):
        SppNet("overfeat5", spp=False, img_size=64)
    with pytest.raises(ValueError, match="too small for 1x1 bins"):
        SppNet("overfeat5", spp=False, img_size=40, baseline_pool="paper_window")


def test_width_and_fc_dim_scale_the_layers() -> None:
    model = create_classifier("zf5", True, num_classes=10, input_size=128, width=0.25, fc_dim=256)
    convs = [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs == [24, 64, 96, 96, 64]
    assert model.pre_logits.fc6.in_features == 64 * 50 and model.pre_logits.fc7.out_features == 256


@pytest.mark.parametrize("kwargs", [dict(width=0), dict(fc_dim=0), dict(dropout=1.0), dict(init="xavier")])
def test_bad_settings_are_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SppNet("zf5", **kwargs)


def test_unknown_architecture_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        SppNet("alexnet")


def test_within_channel_lrn_matches_its_definition() -> None:
    x = torch.randn(1, 2, 5, 6)
    out = WithinChannelLRN(size=3, alpha=0.5, beta=0.75)(x)
    padded = nn.functional.pad(x * x, (1, 1, 1, 1))
    for i in range(5):
        for j in range(6):
            mean_sq = padded[:, :, i : i + 3, j : j + 3].sum(dim=(-2, -1)) / 9
            torch.testing.assert_close(out[:, :, i, j], x[:, :, i, j] / (1 + 0.5 * mean_sq) ** 0.75)


def test_lrn_modes() -> None:
    assert isinstance(make_lrn("across_channel"), nn.LocalResponseNorm)
    assert isinstance(make_lrn("none"), nn.Identity)
    model = SppNet("zf5", lrn="none", width=0.25, fc_dim=8)
    assert not any(isinstance(m, WithinChannelLRN) for m in model.modules())
    with pytest.raises(ValueError, match="lrn"):
        make_lrn("batch")


def test_gaussian_init_uses_std_0_01() -> None:
    model = SppNet("zf5", init="gaussian", width=0.5, fc_dim=64)
    conv = model.features.conv3.conv.weight
    assert abs(conv.std().item() - 0.01) < 0.001 and model.features.conv3.conv.bias.abs().sum() == 0
