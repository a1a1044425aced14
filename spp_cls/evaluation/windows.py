"""View windows of the multi-view protocols and their mapping onto the last conv map (paper appendix).

Coordinates: pixel-index coordinates of the image resized for the view's scale (pixel i is centred at i);
a window is ``(x0, y0, side)`` and covers pixels x0 .. x0 + side - 1 (its right edge is x0 + side).

Layouts (positions of a ``side`` x ``side`` window in a W x H image, rounded to whole pixels):
``ten``: the center and the 4 corners; ``eighteen``: those and the middles of the 4 sides. Positions that
coincide (at scale 224 the window spans the short side, so only 3 distinct positions remain) are kept once.
Each layout is used on the image and on its mirror, so ``eighteen`` gives 18 views per scale, 6 at 224.

Mapping a window to feature-map cells (inclusive indices), with S the network's total stride and c0 the
image position of the receptive-field centre of cell 0 (``Architecture.first_center``; measured for a timm
backbone: ``spp_cls/models/timm_geometry.py``):

- ``paper`` (the appendix): left = floor((x0 - c0) / S) + 1, right = ceil((x0 + side - c0) / S) - 1, the cells
  whose centres lie inside the window. The appendix states it for nets padded by floor(k/2) everywhere
  (c0 = 0) and says to "add a proper offset" otherwise: that offset is c0 (20 px for ZF-5 here).
- ``crop`` (a rounded variant, like the authors' release): left = round(x0 / S), right = left + n - 1 with n
  the map side a ``side`` x ``side`` crop gives: exactly the cells the network computes on the cropped
  window when x0 is a multiple of S. For ZF-5 at 224 the paper rule takes 14 columns where a crop has 13.

Both clip to the map; a window that maps to no cell gets the nearest one (the release takes the mean of the
two edges). Rows use the same rule with y.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from spp_cls.models.geometry import MapGeometry

LAYOUTS = {
    "ten": ("center", "top_left", "top_right", "bottom_left", "bottom_right"),
    "eighteen": ("center", "top_left", "top_right", "bottom_left", "bottom_right", "top", "bottom", "left", "right"),
}
MAPPINGS = ("paper", "crop")


class Window(NamedTuple):
    x0: int
    y0: int
    side: int


def window_positions(height: int, width: int, side: int, layout: str) -> list[Window]:
    """The distinct windows of ``layout`` in an image of ``height`` x ``width`` (both >= ``side``)."""
    if layout not in LAYOUTS:
        raise ValueError(f"view layout must be one of {sorted(LAYOUTS)}; got {layout!r}")
    if min(height, width) < side:
        raise ValueError(f"a {side}-pixel window does not fit a {width}x{height} image")
    along = {"left": 0, "middle": int(round((width - side) / 2)), "right": width - side}
    down = {"top": 0, "middle": int(round((height - side) / 2)), "bottom": height - side}
    named = {
        "center": ("middle", "middle"),
        "top": ("middle", "top"),
        "bottom": ("middle", "bottom"),
        "left": ("left", "middle"),
        "right": ("right", "middle"),
    }
    windows: list[Window] = []
    for position in LAYOUTS[layout]:
        horizontal, vertical = named.get(position, tuple(reversed(position.split("_"))))
        window = Window(along[horizontal], down[vertical], side)
        if window not in windows:
            windows.append(window)
    return windows


def _map_edges(start: int, side: int, arch: MapGeometry, size: int, mapping: str) -> tuple[int, int]:
    stride = arch.total_stride
    if mapping == "paper":  # the only mapping that needs the centre (a timm backbone measures it when first asked)
        center = arch.first_center
        left = math.floor((start - center) / stride) + 1
        right = math.ceil((start + side - center) / stride) - 1
    elif mapping == "crop":
        left = int(math.floor(start / stride + 0.5))
        right = left + arch.feature_size(side) - 1
    else:
        raise ValueError(f"window mapping must be one of {list(MAPPINGS)}; got {mapping!r}")
    left, right = max(0, left), min(size - 1, right)
    if left > right:
        left = right = min(size - 1, max(0, (left + right) // 2))
    return left, right


def map_window(
    window: Window, arch: MapGeometry, map_height: int, map_width: int, mapping: str
) -> tuple[int, int, int, int]:
    """Inclusive feature-map box (x1, y1, x2, y2) of ``window``, as ``torchvision.ops.roi_pool`` takes it."""
    x1, x2 = _map_edges(window.x0, window.side, arch, map_width, mapping)
    y1, y2 = _map_edges(window.y0, window.side, arch, map_height, mapping)
    return x1, y1, x2, y2
