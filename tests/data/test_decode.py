"""Decoding by content: every awkward-but-valid file becomes RGB, every unusable one a DecodeError."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from spp_cls.data.decode import DecodeError, decode_rgb, image_size
from tests.data.bad_images import convertible, png_with_size, unreadable


@pytest.mark.parametrize("name", sorted(convertible()))
def test_convertible_files_become_rgb(name: str) -> None:
    image = decode_rgb(convertible()[name])
    assert image.dtype == torch.uint8 and image.shape == (3, 70, 90)
    assert image.float().std() > 5  # real content, not a blank


@pytest.mark.parametrize("name", sorted(unreadable()))
def test_unusable_files_raise_decode_error(name: str) -> None:
    with pytest.raises(DecodeError):
        decode_rgb(unreadable()[name])


def test_pixel_limit_is_checked_from_the_header() -> None:
    with pytest.raises(DecodeError, match="over the limit of 1000"):
        decode_rgb(png_with_size(40, 30), max_pixels=1000)
    assert decode_rgb(convertible()["gray.JPEG"], max_pixels=90 * 70).shape == (3, 70, 90)


def test_jpeg_is_decoded_at_reduced_size_only_when_enough_pixels_remain() -> None:
    ys, xs = np.mgrid[0:400, 0:640]
    pixels = np.stack([128 + 100 * np.sin(xs / 23), 128 + 100 * np.cos(ys / 31), (xs + ys) % 256], -1).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=95)
    data = buffer.getvalue()
    assert decode_rgb(data).shape == (3, 400, 640)
    assert decode_rgb(data, min_short_side=100).shape == (3, 100, 160)  # 1/4 scale keeps >= 100
    assert decode_rgb(data, min_short_side=150).shape == (3, 150, 240)  # 3/8 (libjpeg-turbo's M/8 scales)
    assert decode_rgb(data, min_short_side=200).shape == (3, 200, 320)  # 1/2
    assert decode_rgb(data, min_short_side=201).shape == (3, 400, 640)  # 5/8 would fit but is below MIN_REDUCTION
    full, half = decode_rgb(data).float(), decode_rgb(data, min_short_side=200).float()
    pooled = torch.nn.functional.avg_pool2d(full[None], 2)[0]
    assert (pooled - half).abs().mean() < 4  # the same picture, at half resolution


def test_our_pixel_limit_counts_not_pils_bomb_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """PIL refuses images over 2 x Image.MAX_IMAGE_PIXELS whatever data.max_pixels allows; a raised max_pixels
    must be the limit, on PIL's decode path (PNG, GIF) and for the header-only size, and PIL's own setting is
    left as it was."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # stands in for PIL's ~89.5 M (error above 2x)
    pixels = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    for fmt in ("PNG", "GIF"):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, fmt)
        assert decode_rgb(buffer.getvalue(), max_pixels=10**6).shape == (3, 60, 80), fmt  # 4800 pixels
        assert image_size(buffer.getvalue(), max_pixels=10**6) == (80, 60)
    with pytest.raises(DecodeError, match="over the limit of 4000"):
        decode_rgb(buffer.getvalue(), max_pixels=4000)
    with pytest.raises(DecodeError, match="over the limit of 10000"):
        image_size(png_with_size(200, 100), max_pixels=10_000)
    assert Image.MAX_IMAGE_PIXELS == 1000
