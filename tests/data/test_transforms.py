"""The paper's views on decoded images: sizes, positions, same content at 180 as at 224, lighting, values."""

from __future__ import annotations

import random

import pytest
import torch

from spp_cls.data.config import DataConfig
from spp_cls.data.normalize import BatchNormalizer
from spp_cls.data.transforms import CenterView, TrainView, lighting_offset, square_box

SETTINGS = DataConfig(resize_size=256, crop_size=224)


def _image(height: int = 300, width: int = 400) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return torch.stack([xs % 256, ys % 256, (xs // 2 + ys // 3) % 256]).to(torch.uint8)


def test_train_view_shapes_and_ranges() -> None:
    view = TrainView(SETTINGS)
    for size in (224, 180):
        sample = view(_image(), size, random.Random(0))
        assert sample["image"].shape == (3, size, size) and sample["image"].dtype == torch.uint8
        assert sample["lighting"].shape == (3,) and sample["lighting"].abs().max() < 0.2
    assert CenterView(SETTINGS)(_image(), 224)["image"].shape == (3, 224, 224)


def test_same_seed_same_view_other_seed_other_view() -> None:
    view, image = TrainView(SETTINGS), _image()
    a, b = view(image, 224, random.Random(7)), view(image, 224, random.Random(7))
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["lighting"], b["lighting"])
    assert any(not torch.equal(a["image"], view(image, 224, random.Random(s))["image"]) for s in range(5))


def test_small_input_is_the_same_region_at_lower_resolution() -> None:
    """Paper §4: the 180 input is the 224 crop resized, not a new crop."""
    view, image = TrainView(SETTINGS), _image()
    big, small = (
        view(image, 224, random.Random(3))["image"].float(),
        view(image, 180, random.Random(3))["image"].float(),
    )
    resized = torch.nn.functional.interpolate(big[None], size=(180, 180), mode="bilinear", antialias=True)[0]
    assert (resized - small).abs().mean() < 3
    other = view(image, 180, random.Random(4))["image"].float()
    assert (resized - other).abs().mean() > 10


def test_square_box_positions_cover_the_whole_image() -> None:
    h, w = 300, 400  # resized to 256 x 341: the 224 square can sit anywhere in it
    assert square_box(h, w, SETTINGS, "top_left") == (0, 0, 263)  # 224 / (256 / 300), rounded up
    top, left, side = square_box(h, w, SETTINGS, "bottom_right")
    assert (top + side, left + side) == (h, w)
    top, left, side = square_box(h, w, SETTINGS, "center")
    assert abs(left - (w - side) / 2) <= 1 and abs(top - (h - side) / 2) <= 1
    rng = random.Random(0)
    boxes = [square_box(h, w, SETTINGS, "random", rng) for _ in range(300)]
    assert min(b[1] for b in boxes) == 0 and max(b[1] + b[2] for b in boxes) >= w - 1
    assert all(b[0] + b[2] <= h and b[1] + b[2] <= w for b in boxes)


def test_five_position_mode_uses_only_center_and_corners() -> None:
    settings = DataConfig(train_crop="five", flip=False, lighting_std=0.0)
    image, view = _image(), TrainView(settings)
    center = CenterView(settings)(image, 224)["image"]
    crops = [view(image, 224, random.Random(s))["image"] for s in range(40)]
    distinct = {tuple(c[:, 0, 0].tolist()) + tuple(c[:, -1, -1].tolist()) for c in crops}
    assert len(distinct) == 5
    assert any(torch.equal(c, center) for c in crops)


def test_lighting_follows_the_eigen_decomposition() -> None:
    settings = DataConfig(eigval=(1.0, 0.0, 0.0), eigvec=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)))
    offsets = torch.stack([lighting_offset(settings, random.Random(s)) for s in range(500)])
    assert offsets[:, 1:].abs().max() == 0  # only along the first eigenvector
    assert offsets[:, 0].std().item() == pytest.approx(0.1, rel=0.15)
    assert lighting_offset(DataConfig(lighting_std=0.0), random.Random(0)).abs().sum() == 0


def test_normalizer_applies_lighting_and_mean_std() -> None:
    images = torch.full((2, 3, 4, 5), 255, dtype=torch.uint8)
    lighting = torch.tensor([[0.1, 0.0, 0.0], [0.0, 0.0, 0.0]])
    out = BatchNormalizer(DataConfig(mean=(0.5, 0.5, 0.5), std=(0.5, 0.25, 0.5)))(images, lighting)
    assert out.dtype == torch.float32 and out.shape == (2, 3, 4, 5)
    assert out[0, 0].unique().item() == pytest.approx((1.1 - 0.5) / 0.5)
    assert out[1, 1].unique().item() == pytest.approx((1.0 - 0.5) / 0.25)
    with pytest.raises(TypeError, match="uint8"):
        BatchNormalizer(SETTINGS)(images.float())


def test_normalizer_warps_the_mean_image(tmp_path) -> None:
    import numpy as np

    mean = np.zeros((3, 8, 8), dtype=np.float32)
    mean[:, :, 4:] = 1.0  # right half bright
    np.savez(tmp_path / "stats.npz", mean_image=mean)
    settings = DataConfig(normalization="mean_image", mean_image=str(tmp_path / "stats.npz"), std=(1.0, 1.0, 1.0))
    out = BatchNormalizer(settings)(torch.full((1, 3, 16, 32), 255, dtype=torch.uint8))
    assert out.shape == (1, 3, 16, 32)
    assert out[0, :, :, :8].mean() == pytest.approx(1.0, abs=0.01) and out[0, :, :, -8:].mean() == pytest.approx(
        0.0, abs=0.01
    )
    with pytest.raises(ValueError, match="needs mean_image"):
        DataConfig(normalization="mean_image")
