"""Geometry of the paper's Table 1 and parameter counts, computed independently of the model code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import timm
import torch

from spp_cls.models import ARCHITECTURES, MODEL_NAMES

MODELS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "models.md"

# (last conv map at 224, at 180, channels into the head), Table 1 of the paper (arXiv 1406.4729v4)
MAPS = {"zf5": (13, 10, 256), "convnet5": (13, 10, 256), "overfeat5": (18, 14, 512), "overfeat7": (18, 14, 512)}
# per-stage map sizes printed in Table 1 (ZF-5's conv2 "27" is the paper's inconsistency: 13 after pool2)
TABLE1 = {
    "zf5": [55, 13, 13, 13, 13],
    "convnet5": [55, 27, 13, 13, 13],
    "overfeat5": [36, 18, 18, 18, 18],
    "overfeat7": [36, 18, 18, 18, 18, 18, 18],
}


def conv_params(spec: list[tuple[int, int, int]]) -> int:
    return sum(k * k * cin * cout + cout for cin, cout, k in spec)


def fc_params(fc6_in: int, classes: int = 1000) -> int:
    return fc6_in * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * classes + classes


CONV = {
    "zf5": [(3, 96, 7), (96, 256, 5), (256, 384, 3), (384, 384, 3), (384, 256, 3)],
    "convnet5": [(3, 96, 11), (96, 256, 5), (256, 384, 3), (384, 384, 3), (384, 256, 3)],
    "overfeat5": [(3, 96, 7), (96, 256, 5), (256, 512, 3), (512, 512, 3), (512, 512, 3)],
    "overfeat7": [(3, 96, 7), (96, 256, 5)] + [(256, 512, 3)] + [(512, 512, 3)] * 4,
}


def expected_params(name: str) -> int:
    arch, spp = name.removesuffix("_spp"), name.endswith("_spp")
    channels = MAPS[arch][2]
    return conv_params(CONV[arch]) + fc_params(channels * (50 if spp else 36))


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_map_sizes_match_the_paper(arch: str) -> None:
    spec = ARCHITECTURES[arch]
    at224, at180, channels = MAPS[arch]
    assert spec.stage_sizes(224) == TABLE1[arch]
    assert spec.feature_size(180) == at180
    assert spec.out_channels == channels
    model = timm.create_model(f"{arch}_spp", num_classes=3, width=0.125, fc_dim=8)
    for size, side in ((224, at224), (180, at180)):
        assert model.forward_features(torch.zeros(1, 3, size, size)).shape[-2:] == (side, side)


@pytest.mark.parametrize("arch,stride", [("zf5", 16), ("convnet5", 16), ("overfeat5", 12), ("overfeat7", 12)])
def test_total_stride(arch: str, stride: int) -> None:
    assert ARCHITECTURES[arch].total_stride == stride


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_fc6_input_and_parameter_count_for_1000_classes(name: str) -> None:
    model = timm.create_model(name)
    channels = MAPS[name.removesuffix("_spp")][2]
    assert model.pre_logits.fc6.in_features == channels * (50 if name.endswith("_spp") else 36)
    assert sum(p.numel() for p in model.parameters()) == expected_params(name)


def test_readme_lists_the_parameter_counts() -> None:
    text = MODELS_PAGE.read_text()
    for name in MODEL_NAMES:
        row = re.search(rf"^\| `{name}` \|.*$", text, flags=re.MULTILINE)
        assert row, f"docs/models.md has no models-table row for {name}"
        assert f"{expected_params(name):,}" in row.group(0), f"docs/models.md count for {name} is stale"


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_min_input_size_is_the_smallest_that_works(arch: str) -> None:
    spec = ARCHITECTURES[arch]
    size = spec.min_input_size()
    model = timm.create_model(f"{arch}_spp", num_classes=2, width=0.125, fc_dim=4).eval()
    assert model(torch.zeros(1, 3, size, size)).shape == (1, 2)
    assert spec.feature_size(size - 1) == 0
    with pytest.raises(ValueError, match="too small"):
        model(torch.zeros(1, 3, size - 1, size + 20))
