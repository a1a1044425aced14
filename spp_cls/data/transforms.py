"""The paper's image pipeline on decoded uint8 tensors: square views, flips and colour lighting.

Training (paper §3): resize the short side to ``resize_size`` (256) keeping the aspect ratio, take a
``crop_size`` (224) square from the whole image (at a random position, or at one of five fixed positions:
the center and the four corners), flip it horizontally with probability 1/2, and draw AlexNet's PCA colour
lighting. Multi-size training (paper §4) makes the smaller input (180) from the *same* square region,
resized to 180 instead of 224: same content, lower resolution. Validation: the center square.

How, for speed: the resized image is never materialised. The view's square is mapped back onto the
decoded image and only that region is resampled, once, to the output size (antialiased, uint8,
channels-last: torch's fast path). The box is rounded to whole pixels of the decoded image. Images stay
uint8 up to the device, where ``BatchNormalizer`` adds the lighting and normalises (``normalize.py``). The
settings are those of ``data.*`` (``DataConfig``, ``config.py``).

Randomness comes from a ``random.Random`` per sample, seeded by (seed, epoch, sample) by the sampler, so a
sample's augmentation does not depend on which worker or rank draws it or on restarts.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Optional, Protocol

import torch
import torch.nn.functional as F

from spp_cls.data.auto_augment import auto_augment
from spp_cls.data.config import DataConfig

FIVE_POSITIONS = ("center", "top_left", "top_right", "bottom_left", "bottom_right")


def square_box(
    height: int, width: int, settings: DataConfig, position: str, rng: Optional[random.Random] = None
) -> tuple[int, int, int]:
    """(top, left, side) in decoded-image pixels of the ``crop_size`` square of the image resized to
    ``resize_size``, at ``position`` (``random`` draws it, ``center`` or one of the four corners)."""
    scale = settings.resize_size / min(height, width)
    rh, rw = max(settings.crop_size, round(height * scale)), max(settings.crop_size, round(width * scale))
    free_h, free_w = rh - settings.crop_size, rw - settings.crop_size
    if position == "random":
        assert rng is not None
        top, left = rng.randint(0, free_h), rng.randint(0, free_w)
    elif position == "center":
        top, left = int(round(free_h / 2)), int(round(free_w / 2))
    else:
        vertical, horizontal = position.split("_")
        top = 0 if vertical == "top" else free_h
        left = 0 if horizontal == "left" else free_w
    side = min(height, width, max(1, math.ceil(settings.crop_size / scale - 1e-6)))
    return min(round(top / scale), height - side), min(round(left / scale), width - side), side


def resample_square(image: torch.Tensor, box: tuple[int, int, int], size: int, interpolation: str) -> torch.Tensor:
    """Resize the square ``box`` of a (3, H, W) uint8 image to (3, size, size), antialiased."""
    top, left, side = box
    region = image[:, top : top + side, left : left + side].unsqueeze(0)
    region = region.contiguous(memory_format=torch.channels_last)
    if side == size:
        return region[0]
    if region.device.type == "cpu":  # torch's uint8 antialiased kernels exist on the CPU only
        return F.interpolate(region, size=(size, size), mode=interpolation, antialias=True)[0]
    resized = F.interpolate(region.float(), size=(size, size), mode=interpolation, antialias=True)[0]
    return resized.round_().clamp_(0, 255).to(torch.uint8)


def resize_short_side(image: torch.Tensor, short: int, interpolation: str = "bilinear") -> torch.Tensor:
    """The whole (3, H, W) uint8 image resized (antialiased) so that its short side is ``short``."""
    height, width = image.shape[-2:]
    scale = short / min(height, width)
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    if size == (height, width):
        return image
    region = image.unsqueeze(0).contiguous(memory_format=torch.channels_last)
    return F.interpolate(region, size=size, mode=interpolation, antialias=True)[0]


def lighting_offset(settings: DataConfig, rng: random.Random) -> torch.Tensor:
    """AlexNet's colour lighting: the RGB offset eigvec @ (alpha * eigval), alpha ~ N(0, lighting_std)."""
    if settings.lighting_std == 0:
        return torch.zeros(3)
    alpha = [rng.gauss(0.0, settings.lighting_std) * v for v in settings.eigval]
    return torch.tensor([sum(row[j] * alpha[j] for j in range(3)) for row in settings.eigvec], dtype=torch.float32)


class View(Protocol):
    """What a dataset applies to a decoded uint8 image (3, H, W): ``view(image, size, rng)`` makes the sample
    dict, ``decode_short_side(size)`` is the short side the image may be decoded at (None: full size)."""

    def decode_short_side(self, size: int) -> Optional[int]: ...

    def __call__(self, image: torch.Tensor, size: int, rng: Optional[random.Random]) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ViewPlan:
    """Everything random about one sample's view, drawn before any pixel is decoded: the square ``box``
    (top, left, side) in pixels of the image as decoded, the flip and the lighting offset (None: none).
    Decoding on the GPU (``device_decode.py``) draws it in the loader worker from the JPEG header and renders
    it on the device; on the CPU both happen in the worker. Same draws either way: exact resume holds."""

    box: tuple[int, int, int]
    flip: bool = False
    lighting: Optional[torch.Tensor] = None


class PlannedView(Protocol):
    """A ``View`` whose randomness is drawn by ``plan`` from the image size alone, so that decoding can wait."""

    settings: DataConfig

    def decode_short_side(self, size: int) -> Optional[int]: ...

    def plan(self, height: int, width: int, rng: Optional[random.Random]) -> ViewPlan: ...

    def __call__(self, image: torch.Tensor, size: int, rng: Optional[random.Random]) -> dict[str, Any]: ...


def render_view(image: torch.Tensor, plan: ViewPlan, size: int, interpolation: str) -> torch.Tensor:
    """The planned square of a (3, H, W) uint8 image (on any device), resized to ``size``, flipped if planned."""
    view = resample_square(image, plan.box, size, interpolation)
    return view.flip(-1) if plan.flip else view


def _sample(view: torch.Tensor, plan: ViewPlan) -> dict[str, torch.Tensor]:
    sample = {"image": view}
    if plan.lighting is not None:
        sample["lighting"] = plan.lighting
    return sample


class TrainView:
    """The paper's training view of a decoded image: a square at a random (or one of five) position(s),
    resized to the epoch's input size, flipped with probability 1/2, plus its lighting offset."""

    def __init__(self, settings: DataConfig) -> None:
        self.settings = settings

    def decode_short_side(self, size: int) -> Optional[int]:
        return self.settings.decode_short_side(size)

    def plan(self, height: int, width: int, rng: Optional[random.Random]) -> ViewPlan:
        """The sample's draws, in a fixed order: position, offsets, flip, lighting."""
        if rng is None:
            raise ValueError("the training view needs a per-sample random generator")
        s = self.settings
        position = "random" if s.train_crop == "random" else rng.choice(FIVE_POSITIONS)
        box = square_box(height, width, s, position, rng)
        flip = s.flip and rng.random() < 0.5
        return ViewPlan(box, flip, lighting_offset(s, rng))

    def __call__(self, image: torch.Tensor, size: int, rng: Optional[random.Random]) -> dict[str, torch.Tensor]:
        plan = self.plan(image.shape[1], image.shape[2], rng)
        view = render_view(image, plan, size, self.settings.interpolation)
        if self.settings.auto_augment != "none":
            assert rng is not None  # plan() refused None
            view = auto_augment(view, self.settings.auto_augment, rng)
        return _sample(view, plan)


class CenterView:
    """The 1-view evaluation pipeline: the center ``crop_size`` square of the image resized to ``resize_size``."""

    def __init__(self, settings: DataConfig) -> None:
        self.settings = settings

    def decode_short_side(self, size: int) -> Optional[int]:
        return self.settings.decode_short_side(size)

    def plan(self, height: int, width: int, rng: Optional[random.Random] = None) -> ViewPlan:
        return ViewPlan(square_box(height, width, self.settings, "center"))

    def __call__(self, image: torch.Tensor, size: int, rng: Optional[random.Random] = None) -> dict[str, torch.Tensor]:
        plan = self.plan(image.shape[1], image.shape[2])
        return _sample(render_view(image, plan, size, self.settings.interpolation), plan)
