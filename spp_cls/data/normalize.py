"""Batch normalisation of uint8 images on the device: to float, colour lighting, mean/std or mean image.

Loaders ship uint8 (a quarter of the bytes of float32) and this runs after the batch reached the device,
where it costs next to nothing. ``channel``: (x - mean) / std per channel. ``mean_image``: the paper's
per-pixel mean image (appendix), bilinearly warped to the input's size, subtracted, then divided by std.

The warped mean images are cached per (device, size), least recently used first out beyond
``MEAN_IMAGE_CACHE`` sizes: training sees a few sizes, but the full-image test protocols see nearly every
image at a size of its own, and an unbounded cache would keep one device tensor per size of the test set.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F

from spp_cls.data.config import DataConfig

MEAN_IMAGE_KEY = "mean_image"
MEAN_IMAGE_CACHE = 64  # warped mean images kept: more than the sizes of any training or crop-testing run


def load_mean_image(path: str | Path) -> torch.Tensor:
    """The (3, H, W) float mean image (values in [0, 1]) saved by ``python -m spp_cls.data.stats``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"mean image file {path} does not exist (make it with `python -m spp_cls.data.stats`)")
    with np.load(path, allow_pickle=False) as stats:
        if MEAN_IMAGE_KEY not in stats:
            raise ValueError(f"{path} has no '{MEAN_IMAGE_KEY}' array; it was not written by spp_cls.data.stats")
        image = torch.from_numpy(stats[MEAN_IMAGE_KEY].astype(np.float32))
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"{path}: mean image must have shape (3, H, W); got {tuple(image.shape)}")
    return image


class BatchNormalizer:
    """uint8 (B, 3, H, W) [+ per-sample RGB lighting offsets (B, 3)] -> normalised float32 (B, 3, H, W)."""

    def __init__(self, settings: DataConfig, cache_size: int = MEAN_IMAGE_CACHE) -> None:
        self.mean = torch.tensor(settings.mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(settings.std, dtype=torch.float32).view(1, 3, 1, 1)
        self.mean_image: Optional[torch.Tensor] = None
        if settings.normalization == "mean_image":
            assert settings.mean_image is not None
            self.mean_image = load_mean_image(settings.mean_image).unsqueeze(0)
        self.cache_size = cache_size
        self._warped: OrderedDict[tuple[torch.device, int, int], torch.Tensor] = OrderedDict()

    def _mean(self, device: torch.device, height: int, width: int) -> torch.Tensor:
        if self.mean_image is None:
            return self.mean.to(device)
        key = (device, height, width)
        if key in self._warped:
            self._warped.move_to_end(key)
            return self._warped[key]
        image = self.mean_image
        if image.shape[-2:] != (height, width):
            image = F.interpolate(image, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
        self._warped[key] = image = image.to(device)
        while len(self._warped) > self.cache_size:
            self._warped.popitem(last=False)
        return image

    def __call__(self, images: torch.Tensor, lighting: Optional[torch.Tensor] = None) -> torch.Tensor:
        if images.dtype != torch.uint8:
            raise TypeError(f"expected a uint8 image batch; got {images.dtype}")
        x = images.float().div_(255.0)
        if lighting is not None:
            x.add_(lighting.to(x.device, torch.float32)[:, :, None, None])
        x.sub_(self._mean(x.device, x.shape[-2], x.shape[-1])).div_(self.std.to(x.device))
        return x.contiguous()


def normalize_nested(normalizer: BatchNormalizer, images: Any, lighting: Optional[torch.Tensor] = None) -> Any:
    """Apply ``normalizer`` to a batch tensor, a (B, V, 3, H, W) stack of views, or (nested) lists of images."""
    if isinstance(images, list):
        return [normalize_nested(normalizer, image) for image in images]
    if images.ndim == 3:
        return normalizer(images.unsqueeze(0))[0]
    if images.ndim == 5:
        return normalizer(images.flatten(0, 1)).view(images.shape)
    return normalizer(images, lighting)
