"""Drawing of the embedded synthetic data set: 12 classes defined by shape or by spatial layout.

Classes (the label is what the *target* looks like; everything else in the scene is clutter):
- six shapes: disk, square, triangle, ring, frame, cross;
- two layouts of two copies of one random solid shape: side by side, stacked;
- two textures: horizontal or vertical stripes;
- two relations between two objects far apart: a disk above a square, a square above a disk.

What makes it hard, by design rather than by tuning for one model:
- scale: the target spans 25-65 % of the short side (a 2.6x range), distractors 5-13 %;
- position: the target is anywhere in an image of aspect ratio up to 1.6 (more often near the middle, as in
  photographs), so a center crop sometimes cuts it or misses half of a two-object relation (then it looks like
  a single-shape class), while the full image sees it;
- clutter: small distractor shapes of every kind (some drawn over the target), random thin lines and a shaded,
  noisy background;
- layout: pairs vs stacks, and the above/below relations, differ only in where the parts are, and the
  relations span up to the whole image height (a pattern only coarse pooling regions cover).
Horizontal flips (the training augmentation) keep every label.

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

TARGET_SCALE = (0.25, 0.65)  # target side / image short side
RELATION_SPAN = (0.6, 1.0)  # above/below relations: layout height / image height
DISTRACTOR_SCALE = (0.05, 0.13)
DISTRACTORS = (2, 5)  # [low, high) small clutter shapes per image
LINES = (0, 3)
TARGET_SPREAD = 2.0  # the target's position in the free space ~ Beta(a, a): 1 uniform, larger is more central
NOISE_STD = 10.0


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


SHAPES: tuple[Painter, ...] = (_disk, _square, _triangle, _ring, _frame, _cross)
SOLID_SHAPES: tuple[Painter, ...] = (_disk, _square, _triangle)


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


def _sub_box(cx: float, cy: float, side: float) -> Box:
    return cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2


class _Layout:
    """A class made of parts: each part is (painter or None = random solid shape, relative box in [0,1]^2).

    ``aspect`` is the layout's height / width. A ``tall`` layout (the above/below relations) is sized by the
    image height (RELATION_SPAN), so its two parts can be as far apart as the image allows.
    """

    def __init__(self, parts: tuple[tuple[Painter | None, Box], ...], aspect: float = 1.0, tall: bool = False) -> None:
        self.parts = parts
        self.aspect = aspect
        self.tall = tall

    def size(self, rng: np.random.Generator, width: int, height: int) -> tuple[float, float]:
        """(width, height) of the layout's box in an image of this size."""
        if self.tall:
            box_h = float(rng.uniform(*RELATION_SPAN)) * height
            return box_h / self.aspect, box_h
        extent = float(rng.uniform(*TARGET_SCALE)) * min(width, height)  # the longer side of the layout
        return (extent / self.aspect, extent) if self.aspect >= 1 else (extent, extent * self.aspect)

    def __call__(self, rng: np.random.Generator, draw: ImageDraw.ImageDraw, box: Box, background: np.ndarray) -> None:
        x0, y0, x1, y1 = box
        shared = SOLID_SHAPES[int(rng.integers(len(SOLID_SHAPES)))]
        color = _color(rng, avoid=background)
        for painter, (u0, v0, u1, v1) in self.parts:
            part = (x0 + u0 * (x1 - x0), y0 + v0 * (y1 - y0), x0 + u1 * (x1 - x0), y0 + v1 * (y1 - y0))
            (painter or shared)(draw, part, color)


def _single(painter: Painter) -> _Layout:
    return _Layout(((painter, (0.0, 0.0, 1.0, 1.0)),))


def _relation(top: Painter, bottom: Painter) -> _Layout:
    return _Layout(((top, (0.0, 0.0, 1.0, 0.3)), (bottom, (0.0, 0.7, 1.0, 1.0))), aspect=3.0, tall=True)


CLASSES: tuple[tuple[str, _Layout], ...] = (
    ("disk", _single(_disk)),
    ("square", _single(_square)),
    ("triangle", _single(_triangle)),
    ("ring", _single(_ring)),
    ("frame", _single(_frame)),
    ("cross", _single(_cross)),
    ("pair_side_by_side", _Layout(((None, (0.0, 0.0, 0.4, 1.0)), (None, (0.6, 0.0, 1.0, 1.0))), aspect=0.4)),
    ("pair_stacked", _Layout(((None, (0.0, 0.0, 1.0, 0.4)), (None, (0.0, 0.6, 1.0, 1.0))), aspect=2.5)),
    ("stripes_horizontal", _single(_stripes(horizontal=True))),
    ("stripes_vertical", _single(_stripes(horizontal=False))),
    ("disk_above_square", _relation(_disk, _square)),
    ("square_above_disk", _relation(_square, _disk)),
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
        if avoid is None or np.abs(c - avoid).sum() > 180:
            return int(c[0]), int(c[1]), int(c[2])


def _background(rng: np.random.Generator, width: int, height: int) -> tuple[Image.Image, np.ndarray]:
    base = rng.integers(40, 216, size=3).astype(np.float32)
    tilt = rng.normal(0, 35, size=(2, 3)).astype(np.float32)
    ys, xs = np.linspace(-1, 1, height, dtype=np.float32), np.linspace(-1, 1, width, dtype=np.float32)
    pixels = base + ys[:, None, None] * tilt[0] + xs[None, :, None] * tilt[1]
    pixels += rng.normal(0, NOISE_STD, size=(height, width, 3)).astype(np.float32)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)), base


def _placed(rng: np.random.Generator, width: int, height: int, box_w: float, box_h: float, spread: float = 1.0) -> Box:
    """A box of the given size fully inside the image, at a Beta(spread, spread) position in the free space."""
    x0 = float(rng.beta(spread, spread)) * max(width - box_w, 0)
    y0 = float(rng.beta(spread, spread)) * max(height - box_h, 0)
    return x0, y0, x0 + box_w, y0 + box_h


def _clutter(rng: np.random.Generator, draw: ImageDraw.ImageDraw, width: int, height: int, count: int) -> None:
    short = min(width, height)
    for _ in range(count):
        side = float(rng.uniform(*DISTRACTOR_SCALE)) * short
        painter = SHAPES[int(rng.integers(len(SHAPES)))]
        painter(draw, _placed(rng, width, height, side, side), _color(rng))


def draw_scene(rng: np.random.Generator, label: int, width: int, height: int) -> Image.Image:
    """One RGB image of class ``label``."""
    image, background = _background(rng, width, height)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(*LINES))):
        points = rng.uniform(0, 1, size=4) * np.array([width, height, width, height])
        draw.line([float(v) for v in points], fill=_color(rng), width=int(rng.integers(1, 3)))
    _clutter(rng, draw, width, height, int(rng.integers(*DISTRACTORS)))
    layout = CLASSES[label][1]
    box_w, box_h = layout.size(rng, width, height)
    layout(rng, draw, _placed(rng, width, height, box_w, box_h, TARGET_SPREAD), background)
    _clutter(rng, draw, width, height, int(rng.integers(0, 2)))  # occluders drawn over the target
    return image
