"""The test protocols under reduced precision: bf16 autocast on the CPU (what ``trainer.precision=bf16-mixed``
runs) and a bfloat16 network without autocast (what CUDA autocast hands the multi-view code: bfloat16 maps
and float32 softmax). Every protocol returns float32 scores that sum to 1 and follow the float32 ones."""

from __future__ import annotations

import random
from contextlib import nullcontext

import pytest
import torch

from spp_cls.data.config import DataConfig
from spp_cls.evaluation.config import MultiviewConfig, ProtocolConfig
from spp_cls.evaluation.multiview import FeatureMapViews, pool_boxes
from spp_cls.evaluation.protocols import PROTOCOLS, build_protocol
from spp_cls.evaluation.windows import window_positions
from spp_cls.models import create_classifier

SETTINGS = DataConfig(resize_size=73, crop_size=64)
OPTIONS = ProtocolConfig(MultiviewConfig(scales=[64, 80], chunk_views=7, chunk_pixels=30_000))  # 2 scales: fast
SIZES = [(80, 100), (90, 70), (80, 100), (73, 73)]


def small_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_classifier(
        arch="zf5", num_classes=5, input_size=64, spp=True, width=0.125, fc_dim=32, dropout=0.0
    ).eval()


def normalised_batch(name: str) -> object:
    """A batch as the loader and the normaliser hand it to ``protocol.scores`` (images of mixed sizes)."""
    view = build_protocol(name, SETTINGS, OPTIONS).view()
    generator = torch.Generator().manual_seed(1)
    samples = [
        view(torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=generator), 64, random.Random(0))["image"]
        for h, w in SIZES
    ]

    def normalise(x: object) -> object:
        return [normalise(i) for i in x] if isinstance(x, list) else (x.float() / 255 - 0.5) / 0.25

    samples = normalise(samples)
    return torch.stack(samples) if name in ("center", "ten_view") else samples


def to_dtype(images: object, dtype: torch.dtype) -> object:
    return [to_dtype(i, dtype) for i in images] if isinstance(images, list) else images.to(dtype)


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
@pytest.mark.parametrize("how", ["cpu_autocast", "bf16_network"])
def test_protocols_score_in_float32_under_bfloat16(name: str, how: str) -> None:
    model = small_model()
    protocol = build_protocol(name, SETTINGS, OPTIONS)
    images = normalised_batch(name)
    with torch.no_grad():
        expected, expected_views = protocol.scores(model, images)
        if how == "cpu_autocast":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                scores, views = protocol.scores(model, images)
        else:
            scores, views = protocol.scores(model.to(torch.bfloat16), to_dtype(images, torch.bfloat16))
    assert scores.dtype == torch.float32
    torch.testing.assert_close(scores.sum(-1), torch.ones(len(SIZES)))
    torch.testing.assert_close(scores, expected, rtol=0, atol=0.02)
    assert views.tolist() == expected_views.tolist()


def test_pooling_bfloat16_maps_selects_their_values() -> None:
    """Pooled in float32, handed back in the maps' dtype: the same values as the SPP layer on the bf16 maps."""
    model = small_model()
    maps = torch.randn(2, model.num_features, 5, 7).to(torch.bfloat16)
    boxes = torch.tensor([[i, 0, 0, 6, 4] for i in range(2)], dtype=torch.bfloat16)
    pooled = pool_boxes(maps, boxes, model.pyramid)
    assert pooled.dtype == torch.bfloat16
    assert torch.equal(pooled, model.pool.to(torch.bfloat16)(maps))


@pytest.mark.parametrize("autocast", [False, True], ids=["bf16_maps", "bf16_maps_autocast"])
def test_views_of_maps_past_256_are_their_own(autocast: bool) -> None:
    """The box rows name their map: bfloat16 holds whole numbers exactly only up to 256 (257 -> 256), so rows in
    the maps' dtype would pool a neighbour's map. Map i's views, scored among 300, equal its views alone."""
    model = small_model().to(torch.bfloat16)
    views = FeatureMapViews("ten", 64, "paper")
    windows = window_positions(73, 90, 64, "ten")
    generator = torch.Generator().manual_seed(2)
    maps = torch.randn(300, model.num_features, 4, 5, generator=generator).relu().to(torch.bfloat16)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16) if autocast else nullcontext():
        together = views._pooled_scores(model, maps, windows, maps.shape[0])
        for i in (0, 255, 256, 257, 299):
            alone = views._pooled_scores(model, maps[i : i + 1], windows, 1)
            torch.testing.assert_close(together[i : i + 1], alone, rtol=0, atol=1e-6)
    assert together.dtype == torch.float32
