"""The mean-image normaliser's cache of warped mean images stays bounded over many input sizes (full-image
testing gives nearly every image a size of its own) and still normalises every size correctly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from spp_cls.data.config import DataConfig
from spp_cls.data.normalize import MEAN_IMAGE_CACHE, BatchNormalizer


def mean_image_settings(tmp_path: Path) -> DataConfig:
    mean = np.random.default_rng(0).random((3, 12, 16), dtype=np.float32)
    np.savez(tmp_path / "stats.npz", mean_image=mean)
    return DataConfig(normalization="mean_image", mean_image=str(tmp_path / "stats.npz"), std=(1.0, 1.0, 1.0))


def expected(settings: DataConfig, images: torch.Tensor) -> torch.Tensor:
    mean = torch.from_numpy(np.load(settings.mean_image)["mean_image"])[None]
    mean = F.interpolate(mean, size=images.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
    return images.float() / 255 - mean


def test_warped_mean_images_are_cached_least_recently_used_first(tmp_path: Path) -> None:
    normalizer = BatchNormalizer(mean_image_settings(tmp_path), cache_size=3)
    sizes = [(20, 20 + i) for i in range(6)]
    for height, width in sizes:
        normalizer(torch.zeros(1, 3, height, width, dtype=torch.uint8))
    assert [key[1:] for key in normalizer._warped] == sizes[-3:]
    normalizer(torch.zeros(1, 3, *sizes[3], dtype=torch.uint8))  # used again: now the most recent
    normalizer(torch.zeros(1, 3, 30, 30, dtype=torch.uint8))
    assert [key[1:] for key in normalizer._warped] == [sizes[5], sizes[3], (30, 30)]


def test_many_sizes_keep_the_default_bound_and_normalise_right(tmp_path: Path) -> None:
    settings = mean_image_settings(tmp_path)
    normalizer = BatchNormalizer(settings)
    generator = torch.Generator().manual_seed(0)
    for i in range(MEAN_IMAGE_CACHE + 20):
        images = torch.randint(0, 256, (1, 3, 16 + i % 7, 16 + i), dtype=torch.uint8, generator=generator)
        torch.testing.assert_close(normalizer(images), expected(settings, images))
        assert len(normalizer._warped) <= MEAN_IMAGE_CACHE
    first = torch.randint(0, 256, (1, 3, 16, 16), dtype=torch.uint8, generator=generator)  # evicted long ago
    torch.testing.assert_close(normalizer(first), expected(settings, first))
