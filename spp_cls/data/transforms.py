"""Image pipelines: the paper's resize-then-crop, as torchvision v2 transforms.

Training: resize the short side to ``resize_size``, take a random ``crop_size`` square and flip it
horizontally with probability 0.5. Evaluation: the same resize and the center crop. Both normalise by
mean/std. (The paper subtracts a per-pixel mean image; per-channel mean/std is the modern equivalent and
what timm models expect.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2

INTERPOLATIONS = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC}


@dataclass(frozen=True)
class PipelineSettings:
    """Sizes and normalisation shared by training, validation and the test protocols."""

    resize_size: int = 256
    crop_size: int = 224
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        if not 0 < self.crop_size <= self.resize_size:
            raise ValueError(f"need 0 < crop_size <= resize_size; got {self.crop_size}, {self.resize_size}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {sorted(INTERPOLATIONS)}; got {self.interpolation!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean and std need 3 values each, std > 0; got {self.mean}, {self.std}")

    def resize(self) -> v2.Transform:
        return v2.Resize(self.resize_size, interpolation=INTERPOLATIONS[self.interpolation], antialias=True)

    def to_normalized_tensor(self) -> v2.Transform:
        return v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(self.mean, self.std)])


def train_transform(settings: PipelineSettings) -> Callable:
    """Random crop + horizontal flip of the resized image."""
    return v2.Compose(
        [
            settings.resize(),
            v2.RandomCrop(settings.crop_size),
            v2.RandomHorizontalFlip(),
            settings.to_normalized_tensor(),
        ]
    )


def center_crop_transform(settings: PipelineSettings) -> Callable:
    """The 1-view evaluation pipeline: resize, then the central crop."""
    return v2.Compose([settings.resize(), v2.CenterCrop(settings.crop_size), settings.to_normalized_tensor()])
