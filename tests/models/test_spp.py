"""The SPP layer against an independent brute-force reading of the paper's appendix bin rule."""

from __future__ import annotations

import math

import pytest
import torch

from spp_cls.models.spp import SpatialPyramidPool, bin_bounds, check_pyramid, masked_pyramid


def reference_spp(x: torch.Tensor, levels: list[int]) -> torch.Tensor:
    """Bin (i, j) of an n x n level covers rows floor(i*h/n)..ceil((i+1)*h/n)-1, same for columns."""
    b, c, h, w = x.shape
    out = []
    for n in levels:
        level = torch.empty(b, c, n, n)
        for i in range(n):
            r0, r1 = math.floor(i * h / n), math.ceil((i + 1) * h / n)
            for j in range(n):
                c0, c1 = math.floor(j * w / n), math.ceil((j + 1) * w / n)
                level[:, :, i, j] = x[:, :, r0:r1, c0:c1].reshape(b, c, -1).max(dim=-1).values
        out.append(level.reshape(b, -1))
    return torch.cat(out, dim=1)


@pytest.mark.parametrize("levels", [[6, 3, 2, 1], [4, 3, 2, 1], [1, 2, 3, 6], [5]])
def test_matches_brute_force_for_every_map_size(levels: list[int]) -> None:
    spp = SpatialPyramidPool(levels)
    gen = torch.Generator().manual_seed(0)
    for h in range(1, 31):
        w = 31 - h if h % 3 else h  # squares and many non-square shapes, maps smaller than the levels
        x = torch.randn(2, 3, h, w, generator=gen)
        torch.testing.assert_close(spp(x), reference_spp(x, levels), rtol=0, atol=0)


@pytest.mark.parametrize("levels", [[6, 3, 2, 1], [7, 5, 4]])
def test_masked_pyramid_equals_adaptive_pooling_for_every_side_up_to_30(levels: list[int]) -> None:
    """The graph-capture computation gives exactly the eager layer's values, every h x w in 1..30."""
    gen = torch.Generator().manual_seed(len(levels))
    for h in range(1, 31):
        x = torch.randn(2, 2, h, 30, generator=gen)
        for w in range(1, 31):
            part = x[..., :w]
            eager = torch.cat([torch.nn.functional.adaptive_max_pool2d(part, n).flatten(1) for n in levels], 1)
            assert torch.equal(masked_pyramid(part, levels), eager), (h, w)


def test_output_length_is_fixed_and_channel_major() -> None:
    spp = SpatialPyramidPool([2, 1])
    x = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(1, 2, 4, 4)
    out = spp(x)
    assert out.shape == (1, 2 * (4 + 1)) == (1, spp.output_dim(2))
    # level 2 first: channel 0's four bins, then channel 1's; then level 1 (channel 0, channel 1)
    assert out[0].tolist() == [5, 7, 13, 15, 21, 23, 29, 31, 15, 31]


def test_paper_window_recipe_is_not_used_at_a_10() -> None:
    """At a = 10 the 6x6 level still has 6 bins per side (the ceil/floor window recipe would give 9)."""
    start, end = bin_bounds(10, 6)
    assert list(zip(start.tolist(), end.tolist())) == [(0, 2), (1, 4), (3, 5), (5, 7), (6, 9), (8, 10)]
    window, stride = math.ceil(10 / 6), math.floor(10 / 6)
    assert (10 - window) // stride + 1 == 9
    assert SpatialPyramidPool([6])(torch.randn(1, 1, 10, 10)).shape == (1, 36)


def test_same_bins_as_fixed_pooling_at_13() -> None:
    """At a = 13 the bins equal the paper's sliding-window pools (window ceil(a/n), stride floor(a/n))."""
    x = torch.randn(2, 8, 13, 13)
    for n in (6, 3, 2, 1):
        window, stride = math.ceil(13 / n), math.floor(13 / n)
        fixed = torch.nn.functional.max_pool2d(x, window, stride)
        torch.testing.assert_close(SpatialPyramidPool([n])(x), fixed.flatten(1), rtol=0, atol=0)


def test_deterministic_mode_gives_the_same_values_and_gradients() -> None:
    x = torch.randn(2, 4, 11, 7, dtype=torch.float64, requires_grad=True)
    spp = SpatialPyramidPool([6, 3, 2, 1])
    weights = torch.randn(2, spp.output_dim(4), dtype=torch.float64)
    (spp(x) * weights).sum().backward()
    grad = x.grad.clone()
    x.grad = None
    torch.use_deterministic_algorithms(True)
    try:
        out = spp(x)
        (out * weights).sum().backward()
    finally:
        torch.use_deterministic_algorithms(False)
    torch.testing.assert_close(out, spp(x))
    torch.testing.assert_close(x.grad, grad)


@pytest.mark.parametrize("bad", [[], [0, 1], [2, -1], [3, 3], [2.5]])
def test_bad_pyramids_are_rejected(bad: list) -> None:
    with pytest.raises(ValueError, match="pyramid"):
        check_pyramid(bad)
