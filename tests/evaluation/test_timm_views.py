"""The test protocols on timm backbones, both heads: the window -> feature-map mapping against crops (as for the
paper's networks in test_multiview.py), whole-image windows, batch-size invariance, global pooling on windows."""

from __future__ import annotations

import pytest
import torch

from spp_cls.evaluation.config import MultiviewConfig, ProtocolConfig
from spp_cls.evaluation.multiview import FeatureMapViews, features, pool_boxes
from spp_cls.evaluation.protocols import build_protocol
from spp_cls.evaluation.windows import Window, map_window
from tests.evaluation.test_multiview import SETTINGS, _batch, _normalised
from tests.models.test_timm_backbone import backbone


def _model(name: str = "resnet18", spp: bool = True) -> torch.nn.Module:
    model = backbone(name, spp)
    for m in model.modules():  # non-zero biases and BN statistics, so that padding differences would show
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(m.bias, -0.1, 0.1)
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
    return model.eval()


@pytest.mark.parametrize("name", ["resnet18", "convnext_atto"])
def test_grid_aligned_window_matches_its_crop_best(name: str) -> None:
    """As for the paper's nets: the cells the crop mapping picks for a grid-aligned interior window are the ones
    that best match the backbone run on the cropped window, and their SPP vector is close to the crop's."""
    model = _model(name)
    s = model.arch.total_stride
    torch.manual_seed(1)
    image = torch.rand(1, 3, 128 + 8 * s, 128 + 8 * s)
    x0 = y0 = 4 * s
    crop = image[..., y0 : y0 + 128, x0 : x0 + 128]
    with torch.no_grad():
        maps, reference = features(model, image), features(model, crop)
    x1, y1, x2, y2 = map_window(Window(x0, y0, 128), model.arch, maps.shape[-2], maps.shape[-1], "crop")
    n = reference.shape[-1]
    assert (x2 - x1 + 1, y2 - y1 + 1) == (n, n)
    paper = map_window(Window(x0, y0, 128), model.arch, maps.shape[-2], maps.shape[-1], "paper")
    assert all(abs(p - c) <= 1 for p, c in zip(paper, (x1, y1, x2, y2)))  # the appendix rule, with the measured c0

    def mismatch(dx: int, dy: int) -> float:
        return (maps[..., y1 + dy : y1 + dy + n, x1 + dx : x1 + dx + n] - reference).abs().mean().item()

    assert mismatch(0, 0) < min(mismatch(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if (dx, dy) != (0, 0))
    pooled = pool_boxes(maps, torch.tensor([[0, x1, y1, x2, y2]], dtype=torch.float32), model.pyramid)
    expected = model.pool(reference)
    assert ((pooled - expected).norm() / expected.norm()).item() < 0.5


@pytest.mark.parametrize("spp", [True, False])
def test_a_window_that_is_the_whole_image_scores_like_the_full_image(spp: bool) -> None:
    model = _model("convnext_atto", spp)
    image = torch.rand(2, 3, 96, 96)
    views = FeatureMapViews("ten", 96, "paper")
    with torch.inference_mode():  # as in a test loop: the first cell's centre is measured in there
        sums, count = views.score_sums(model, image)
        whole = model(image).softmax(-1) + model(image.flip(-1)).softmax(-1)
    assert count == 2  # one window (all five positions coincide), on the image and its mirror
    torch.testing.assert_close(sums, whole, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("spp", [True, False])
@pytest.mark.parametrize("name", ["center", "full_flip", "multiview"])
def test_protocols_are_batch_size_invariant(name: str, spp: bool) -> None:
    options = ProtocolConfig(MultiviewConfig(scales=[64, 80], chunk_views=7, chunk_pixels=30_000))
    model = _model(spp=spp)
    sizes = [(80, 100), (90, 70), (80, 100), (64, 64)]
    samples = [_normalised(s) for s in _batch(sizes, name, options)]
    protocol = build_protocol(name, SETTINGS, options)
    protocol.check_model(model, "resnet18")  # both heads take whole images
    stacked = torch.stack(samples) if name == "center" else samples
    with torch.no_grad():
        together, _ = protocol.scores(model, stacked)
        alone = [protocol.scores(model, stacked[i : i + 1])[0] for i in range(len(samples))]
    torch.testing.assert_close(together, torch.cat(alone), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(together.sum(-1), torch.ones(len(samples)))
