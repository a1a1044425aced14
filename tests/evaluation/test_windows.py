"""View layouts and the window -> feature-map mapping."""

from __future__ import annotations

import pytest

from spp_cls.evaluation.windows import Window, map_window, window_positions
from spp_cls.models import ARCHITECTURES


@pytest.mark.parametrize("height,width", [(256, 341), (341, 256), (300, 400), (560, 747)])
def test_eighteen_views_per_scale_inside_the_image(height: int, width: int) -> None:
    windows = window_positions(height, width, 224, "eighteen")
    assert len(windows) == 9  # x 2 with the mirror: 18 views
    assert all(0 <= w.x0 and w.x0 + w.side <= width and 0 <= w.y0 and w.y0 + w.side <= height for w in windows)
    assert {(w.x0, w.y0) for w in windows} >= {(0, 0), (width - 224, height - 224)}  # corners included
    assert len(window_positions(height, width, 224, "ten")) == 5


def test_at_scale_224_only_three_positions_remain() -> None:
    """Paper: 6 views at 224 (3 positions along the long side x 2 mirrors), 5 x 18 + 6 = 96 over 6 scales."""
    assert len(window_positions(224, 298, 224, "eighteen")) == 3
    sides = {224: (224, 298), 256: (256, 341), 300: (300, 400), 360: (360, 480), 448: (448, 597), 560: (560, 747)}
    assert sum(2 * len(window_positions(h, w, 224, "eighteen")) for h, w in sides.values()) == 96


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_mappings_cover_the_crop_cells_and_stay_on_the_map(arch: str) -> None:
    a = ARCHITECTURES[arch]
    side = a.feature_size(448)
    n = a.feature_size(224)
    s = a.total_stride
    for x0 in (0, s, 3 * s, 448 - 224):  # border and grid-aligned interior windows
        x1, _, x2, _ = map_window(Window(x0, 0, 224), a, side, side, "crop")
        assert 0 <= x1 <= x2 < side
        if x0 % s == 0 and x0 // s + n <= side:
            assert (x1, x2) == (x0 // s, x0 // s + n - 1)  # exactly the cells a 224 crop computes
        p1, _, p2, _ = map_window(Window(x0, 0, 224), a, side, side, "paper")
        assert 0 <= p1 <= p2 < side and abs(p1 - x1) <= 1 and abs(p2 - x2) <= 1
    whole = map_window(Window(0, 0, 224), a, n, n, "paper")
    assert whole == (0, 0, n - 1, n - 1)  # a window that is the whole 224 input maps to the whole map


def test_paper_rule_formula() -> None:
    """ZF-5: S = 16, cell 0 centred at pixel 20;
    left = floor((x - 20) / 16) + 1, right = ceil((x + 224 - 20) / 16) - 1."""
    zf5 = ARCHITECTURES["zf5"]
    assert (zf5.total_stride, zf5.first_center) == (16, 20.0)
    assert map_window(Window(64, 32, 224), zf5, 30, 30, "paper") == (3, 1, 16, 14)


class _Unmeasurable:
    """A geometry whose first-cell centre cannot be had (a backbone the measurement cannot take)."""

    name, total_stride = "unmeasurable", 16

    @property
    def first_center(self) -> float:
        raise ValueError("cannot measure")

    def feature_size(self, size: int) -> int:
        return size // 16


def test_the_crop_mapping_needs_no_first_cell_centre() -> None:
    assert map_window(Window(32, 16, 64), _Unmeasurable(), 10, 10, "crop") == (2, 1, 5, 4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot measure"):
        map_window(Window(32, 16, 64), _Unmeasurable(), 10, 10, "paper")  # type: ignore[arg-type]
