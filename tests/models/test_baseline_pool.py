"""The no-SPP baselines end in the paper's 6x6 bins at every input size: fc6 sees 36 x C values against the
SPP head's 50 x C (30 x C for the 30-bin control), the ratio of the paper's Table 2 comparison (9,216 : 12,800
for ZF-5), at the paper's 224 px and at the embedded scale's 112 px alike."""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

from spp_cls.models import ARCHITECTURES, SppNet, create_classifier
from spp_cls.models.architectures import PoolSpec, bin_window

EMBEDDED_WIDTH = 0.125  # conf/scale/embedded.yaml


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("size, width", [(224, 1.0), (112, EMBEDDED_WIDTH)])
def test_fc6_sees_36_bins_without_spp_and_50_with_it(arch: str, size: int, width: float) -> None:
    channels = round(ARCHITECTURES[arch].out_channels * width)
    fc6 = {}
    for arm, kwargs in {
        "no_spp": dict(spp=False),
        "spp": dict(spp=True),
        "spp30": dict(spp=True, pyramid=(4, 3, 2, 1)),
    }.items():
        model = create_classifier(arch, num_classes=10, input_size=size, width=width, fc_dim=16, **kwargs)
        fc6[arm] = model.pre_logits.fc6.in_features
        assert model(torch.randn(1, 3, size, size)).shape == (1, 10)
    assert fc6 == {"no_spp": 36 * channels, "spp": 50 * channels, "spp30": 30 * channels}
    if (arch, size) == ("zf5", 224):
        assert (fc6["no_spp"], fc6["spp"]) == (9216, 12800)  # the paper's fc6 inputs


@pytest.mark.parametrize(
    "arch, window",
    [
        ("zf5", PoolSpec(3, 2)),
        ("convnet5", PoolSpec(3, 2)),
        ("overfeat5", PoolSpec(3, 3)),
        ("overfeat7", PoolSpec(3, 3)),
    ],
)
def test_at_224_the_baseline_pool_is_table_1s_pool5(arch: str, window: PoolSpec) -> None:
    model = timm.create_model(arch, img_size=224, width=0.25, fc_dim=8)
    assert isinstance(model.pool, nn.MaxPool2d)
    assert (model.pool.kernel_size, model.pool.stride) == (window.kernel, window.stride)
    assert ARCHITECTURES[arch].baseline_pool == window  # the opt-out paper_window is the same layer here


def test_timm_builds_the_baseline_for_the_embedded_crop() -> None:
    model = timm.create_model("zf5", img_size=112, width=EMBEDDED_WIDTH, num_classes=12)
    assert model.pre_logits.fc6.in_features == 36 * 32  # 6x6 conv5 map, every cell pooled (1x1 windows)
    old = timm.create_model("zf5", img_size=112, width=EMBEDDED_WIDTH, num_classes=12, baseline_pool="paper_window")
    assert old.pre_logits.fc6.in_features == 4 * 32  # Table 1's 3x3/2 window leaves 2x2 bins of a 6x6 map
    with pytest.raises(ValueError, match="baseline_pool applies to the no-SPP models only"):
        timm.create_model("zf5_spp", baseline_pool="paper_bins")


@pytest.mark.parametrize("side", range(6, 21))
def test_the_baseline_pool_gives_the_appendix_bins(side: int) -> None:
    """Whatever layer builds them (a max pool where one window fits, else the SPP layer's 6x6 level), the bins
    are the paper's appendix rule: adaptive max pooling to 6x6."""
    size = next(s for s in range(64, 400) if ARCHITECTURES["overfeat5"].feature_size(s) == side)
    model = SppNet("overfeat5", spp=False, img_size=size, width=0.125, fc_dim=8).eval()
    x = torch.randn(2, model.num_features, side, side)
    pooled = torch.flatten(model.pool(x), 1)
    torch.testing.assert_close(pooled, F.adaptive_max_pool2d(x, 6).flatten(1), rtol=0, atol=0)


def test_non_square_baseline() -> None:
    model = SppNet("zf5", spp=False, img_size=(224, 112), width=0.125, fc_dim=8).eval()
    assert model.pre_logits.fc6.in_features == 36 * 32
    assert model(torch.randn(1, 3, 224, 112)).shape == (1, 1000)


def test_bin_window() -> None:
    assert bin_window(13, 6) == PoolSpec(3, 2) and bin_window(18, 6) == PoolSpec(3, 3)
    assert bin_window(6, 6) == PoolSpec(1, 1) and bin_window(12, 6) == PoolSpec(2, 2)
    assert bin_window(8, 6) is None and bin_window(10, 6) is None  # unevenly spaced bins


def test_a_map_smaller_than_the_bins_is_refused() -> None:
    with pytest.raises(ValueError, match="too small for 6x6 bins"):
        SppNet("zf5", spp=False, img_size=96)  # 5x5 conv5
    with pytest.raises(ValueError, match="baseline_pool"):
        SppNet("zf5", spp=False, baseline_pool="global")
