"""Test protocols and the top-k error metric."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchmetrics.classification import MulticlassAccuracy

from spp_cls.data.config import DataConfig
from spp_cls.data.folder import SkippingImageFolder
from spp_cls.data.transforms import CenterView
from spp_cls.evaluation import PROTOCOLS, build_protocol
from spp_cls.evaluation.metrics import TopKError

SETTINGS = DataConfig(resize_size=73, crop_size=64)


def test_center_protocol_is_the_validation_view(tiny_data: Path) -> None:
    image = SkippingImageFolder(tiny_data / "val")[0]["image"]
    view = build_protocol("center", SETTINGS).view()
    assert torch.equal(view(image, 64)["image"], CenterView(SETTINGS)(image, 64)["image"])
    assert view(image, 64)["image"].shape == (3, 64, 64)


def test_center_protocol_scores_are_softmax() -> None:
    model = torch.nn.Linear(4, 3)
    x = torch.randn(5, 4)
    scores, views = build_protocol("center", SETTINGS).scores(model, x)
    assert views.tolist() == [1.0] * 5
    torch.testing.assert_close(scores.sum(-1), torch.ones(5))
    assert torch.equal(scores.argmax(-1), model(x).argmax(-1))


def test_unknown_protocol_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=str(sorted(PROTOCOLS))[1:-1]):
        build_protocol("12-view", SETTINGS)


def test_top_k_error() -> None:
    scores = torch.tensor([[0.9, 0.1, 0.0], [0.1, 0.2, 0.7], [0.5, 0.4, 0.1], [0.2, 0.3, 0.5]])
    target = torch.tensor([0, 0, 1, 1])
    top1, top2 = TopKError(3, 1), TopKError(3, 2)
    top1.update(scores[:2], target[:2])
    top1.update(scores[2:], target[2:])
    assert top1.compute().item() == pytest.approx(0.75)
    assert top2(scores, target).item() == pytest.approx(0.25)
    assert TopKError(3, 5)(scores, target).item() == 0.0  # k capped at the class count


@pytest.mark.parametrize("k", [1, 5])
def test_top_k_error_is_one_minus_torchmetrics_accuracy(k: int) -> None:
    generator = torch.Generator().manual_seed(k)
    metric, reference = TopKError(20, k), MulticlassAccuracy(num_classes=20, top_k=k, average="micro")
    for _ in range(3):
        scores, target = torch.randn(16, 20, generator=generator), torch.randint(0, 20, (16,), generator=generator)
        metric.update(scores, target)
        reference.update(scores, target)
    assert metric.compute().item() == pytest.approx(1 - reference.compute().item())
