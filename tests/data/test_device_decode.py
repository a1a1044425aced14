"""Decoding on the batch's device (data.decode_device=cuda), run here with the CPU decoder: the same views as
the CPU path, the same random draws, and the bad-input policy through every fallback."""

from __future__ import annotations

import io
import random
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from spp_cls.data import device_decode
from spp_cls.data.config import DataConfig
from spp_cls.data.decode import DecodeError
from spp_cls.data.device_decode import decode_views, device_jpeg_size, view_sample
from spp_cls.data.folder import collate_skipping
from spp_cls.data.transforms import CenterView, TrainView
from tests.data.bad_images import convertible

CPU = torch.device("cpu")
LIMIT = 10**8


def photo(width: int, height: int, seed: int, mode: str = "RGB") -> bytes:
    """A smooth JPEG (band-limited noise), so that resampling differences would show."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(max(2, height // 16), max(2, width // 16), 3), dtype=np.uint8)
    image = Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def settings(**values: Any) -> DataConfig:
    return DataConfig(**({"name": "t", "root": "/t", "num_classes": 2, "reduced_decode": False} | values))


def batch_of(files: list[bytes], view: Any, size: int, encoded: bool) -> dict[str, Any]:
    samples = []
    for k, data in enumerate(files):
        sample = view_sample(data, view, size, random.Random(k), LIMIT, encoded=encoded, source=f"file{k}")
        sample["target"] = k
        samples.append(sample)
    return collate_skipping(samples)


FILES = [photo(500, 375, 0), photo(375, 500, 1), photo(320, 240, 2), photo(300, 200, 3, "L")]


@pytest.mark.parametrize("size", [64, 48])  # both sizes of a multi-size schedule
def test_device_views_equal_the_cpu_views_with_the_same_draws(size: int) -> None:
    view = TrainView(settings(resize_size=73, crop_size=64))
    cpu, encoded = batch_of(FILES, view, size, False), batch_of(FILES, view, size, True)
    assert encoded["encoded"][0] == FILES[0] and encoded["ready"] == [None] * 4  # bytes travel, nothing decoded
    images, kept, failed = decode_views(encoded, CPU, "bilinear", LIMIT)
    assert kept == [0, 1, 2, 3] and failed == []
    assert images is not None and images.shape == (4, 3, size, size)
    assert torch.equal(images, cpu["image"])  # same decoder family, same plan, same resampler: same pixels
    assert torch.equal(encoded["lighting"], cpu["lighting"]) and torch.equal(encoded["target"], cpu["target"])


def test_center_view_is_planned_without_randomness() -> None:
    view = CenterView(settings(resize_size=73, crop_size=64))
    cpu, encoded = batch_of(FILES, view, 64, False), batch_of(FILES, view, 64, True)
    images, _, _ = decode_views(encoded, CPU, "bilinear", LIMIT)
    assert torch.equal(images, cpu["image"]) and "lighting" not in encoded


def test_files_the_device_decoder_cannot_take_are_finished_on_the_cpu_in_the_worker() -> None:
    awkward = convertible()  # CMYK JPEG, PNGs named .JPEG, 16-bit, palette...
    names = sorted(awkward)
    view = TrainView(settings(resize_size=73, crop_size=64))
    encoded = batch_of([awkward[n] for n in names], view, 64, True)
    cmyk = names.index("cmyk.JPEG")
    assert encoded["encoded"][cmyk] is None and encoded["ready"][cmyk] is not None  # CMYK: Pillow converts it
    assert encoded["encoded"][names.index("gray.JPEG")] is not None  # gray JPEGs are fine for the GPU
    images, kept, failed = decode_views(encoded, CPU, "bilinear", LIMIT)
    assert kept == list(range(len(names))) and failed == [] and images.shape == (len(names), 3, 64, 64)


def test_header_checks_the_pixel_limit_and_sends_truncated_files_to_the_cpu_path() -> None:
    data = FILES[0]
    assert device_jpeg_size(data, LIMIT) == (375, 500)
    with pytest.raises(DecodeError, match="over the limit of 1000"):
        device_jpeg_size(data, 1000)
    assert device_jpeg_size(data[: len(data) // 2], LIMIT) is None  # no end-of-image marker: the CPU decides
    with pytest.raises(DecodeError):  # ... and the CPU path rejects it, so the dataset skips and counts it
        view_sample(data[: len(data) // 2], TrainView(settings()), 224, random.Random(0), LIMIT, encoded=True)


def test_a_file_the_device_refuses_is_decoded_on_the_cpu_or_dropped_and_named(monkeypatch: pytest.MonkeyPatch) -> None:
    scan = FILES[2].index(b"\xff\xda") + 20
    broken = FILES[2][:scan] + b"\x00" * 400 + b"\xff\xd9"  # a valid header and end marker around garbage
    view = TrainView(settings(resize_size=73, crop_size=64))
    encoded = batch_of([FILES[0], FILES[1], broken], view, 64, True)
    reference = batch_of([FILES[0], FILES[1]], view, 64, False)
    refused = {id(encoded["encoded"][1]), id(broken)}

    def device_refuses(jpegs: list[bytes], device: torch.device) -> list[torch.Tensor | None]:
        decoded = original(list(jpegs[:1]), device)
        return [decoded[0] if id(data) not in refused else None for data in jpegs]

    original = device_decode._decode_on
    monkeypatch.setattr(device_decode, "_decode_on", device_refuses)
    monkeypatch.setattr(device_decode, "decode_rgb", _strict_cpu_decoder(broken))
    images, kept, failed = decode_views(encoded, CPU, "bilinear", LIMIT)
    assert kept == [0, 1] and failed == ["file2"]  # file1 came back through the CPU; file2 is named
    assert torch.equal(images, reference["image"])


def _strict_cpu_decoder(bad: bytes) -> Any:
    """``decode_rgb`` that rejects ``bad`` (whatever libjpeg-turbo makes of garbage, this file is unreadable)."""
    decode = device_decode.decode_rgb

    def strict(data: bytes, min_short_side: int | None, max_pixels: int) -> torch.Tensor:
        if data == bad:
            raise DecodeError("cannot decode (corrupt scan)")
        return decode(data, min_short_side, max_pixels)

    return strict


def test_batched_decoding_falls_back_to_one_by_one_when_the_batch_call_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = device_decode.decode_jpeg

    def flaky(data: Any, **kwargs: Any) -> Any:
        calls.append(len(data) if isinstance(data, list) else 1)
        if isinstance(data, list):
            raise RuntimeError("batched decode refused one image")
        return real(data, **kwargs)

    monkeypatch.setattr(device_decode, "decode_jpeg", flaky)
    images = device_decode._decode_on(FILES[:3], CPU)
    assert calls == [3, 1, 1, 1] and [tuple(i.shape) for i in images if i is not None] == [
        (3, 375, 500),
        (3, 500, 375),
        (3, 240, 320),
    ]
