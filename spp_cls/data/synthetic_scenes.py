"""Drawing of the embedded synthetic data set: one class = one shape or spatial layout.

The classes depend on shape (disk, square, triangle, ring, cross, frame) and on layout (two disks side by
side vs stacked, horizontal vs vertical stripes). Every object is drawn at a random scale (about 25-60% of
the short side), position and colour on a cluttered, textured background with small distractor blobs, so a
classifier must find a pattern at varying scales and positions: the setting in which the paper's multi-level
pooling is meant to help. Horizontal flips (the training augmentation) keep every label.

Scenes are drawn from a ``numpy`` generator seeded per image, so a scene depends only on
(seed, split, class, index) and regeneration is byte-identical with the same Pillow version.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

Box = tuple[float, float, float, float]
Color = tuple[int, int, int]
Painter = Callable[[ImageDraw.ImageDraw, Box, Color], None]


def _disk(draw: ImageDraw.ImageDraw, box: Box, color: Color) -> None:
    draw.ellipse(box, fill=color)


def _square(draw: ImageDraw.ImageDraw, box: Box, color: Color) -> None:
    draw.rectangle(box, fill=color)


def _triangle(draw: ImageDraw.ImageDraw, box: Box, color: Color) -> None:
    x0, y0, x1, y1 = box
    draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=color)


def _stroke(box: Box) -> int:
    return max(2, int((box[2] - box[0]) * 0.16))


def _ring(draw: ImageDraw.ImageDraw, box: Box, color: Color) -> None:
    draw.ellipse(box, outline=color, width=_stroke(box))


def _frame(draw: ImageDraw.ImageDraw, box: Box, color: Color) -> None:
    draw.rectangle(box, outline=color, width=_stroke(box))


def _cross(draw: ImageDraw.ImageDraw, box: Box, color: Color) -> None:
    x0, y0, x1, y1 = box
    half = (x1 - x0) * 0.14
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    draw.rectangle((cx - half, y0, cx + half, y1), fill=color)
    draw.rectangle((x0, cy - half, x1, cy + half), fill=color)


def _pair(horizontal: bool) -> Painter:
    def draw_pair(draw: ImageDraw.ImageDraw, box: Box, color: Color) -> None:
        x0, y0, x1, y1 = box
        r = (x1 - x0) * 0.22
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        offset = (x1 - x0) / 2 - r
        for sign in (-1, 1):
            px, py = (cx + sign * offset, cy) if horizontal else (cx, cy + sign * offset)
            draw.ellipse((px - r, py - r, px + r, py + r), fill=color)

    return draw_pair


def _stripes(horizontal: bool) -> Painter:
    def draw_stripes(draw: ImageDraw.ImageDraw, box: Box, color: Color) -> None:
        x0, y0, x1, y1 = box
        step = (x1 - x0) / 5
        for k in (0, 2, 4):
            if horizontal:
                draw.rectangle((x0, y0 + k * step, x1, y0 + (k + 1) * step), fill=color)
            else:
                draw.rectangle((x0 + k * step, y0, x0 + (k + 1) * step, y1), fill=color)

    return draw_stripes


CLASSES: tuple[tuple[str, Painter], ...] = (
    ("disk", _disk),
    ("square", _square),
    ("triangle", _triangle),
    ("ring", _ring),
    ("cross", _cross),
    ("frame", _frame),
    ("pair_side_by_side", _pair(horizontal=True)),
    ("pair_stacked", _pair(horizontal=False)),
    ("stripes_horizontal", _stripes(horizontal=True)),
    ("stripes_vertical", _stripes(horizontal=False)),
)
MAX_CLASSES = len(CLASSES)


def class_folder_names(num_classes: int) -> list[str]:
    """Folder names in label order, e.g. ``00_disk``; zero-padded so sorting keeps the order."""
    if not 1 <= num_classes <= MAX_CLASSES:
        raise ValueError(f"the synthetic data set has 1 to {MAX_CLASSES} classes; got {num_classes}")
    return [f"{i:02d}_{name}" for i, (name, _) in enumerate(CLASSES[:num_classes])]


def _color(rng: np.random.Generator, avoid: np.ndarray | None = None) -> Color:
    while True:
        c = rng.integers(0, 256, size=3)
        if avoid is None or np.abs(c - avoid).sum() > 220:
            return int(c[0]), int(c[1]), int(c[2])


def _background(rng: np.random.Generator, width: int, height: int) -> tuple[Image.Image, np.ndarray]:
    base = rng.integers(40, 216, size=3).astype(np.float32)
    tilt = rng.normal(0, 35, size=(2, 3)).astype(np.float32)
    ys, xs = np.linspace(-1, 1, height, dtype=np.float32), np.linspace(-1, 1, width, dtype=np.float32)
    pixels = base + ys[:, None, None] * tilt[0] + xs[None, :, None] * tilt[1]
    pixels += rng.normal(0, 5, size=(height, width, 3)).astype(np.float32)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)), base


def draw_scene(rng: np.random.Generator, label: int, width: int, height: int) -> Image.Image:
    """One RGB image of class ``label``."""
    image, background = _background(rng, width, height)
    draw = ImageDraw.Draw(image)
    short = min(width, height)
    for _ in range(int(rng.integers(2, 7))):  # distractors: small blobs well below the object scale
        r = float(rng.uniform(0.01, 0.035)) * short
        x, y = float(rng.uniform(0, width)), float(rng.uniform(0, height))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=_color(rng))
    side = float(rng.uniform(0.25, 0.6)) * short
    x0 = float(rng.uniform(0.05 * width, 0.95 * width - side))
    y0 = float(rng.uniform(0.05 * height, 0.95 * height - side))
    CLASSES[label][1](draw, (x0, y0, x0 + side, y0 + side), _color(rng, avoid=background))
    return image
