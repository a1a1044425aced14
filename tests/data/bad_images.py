"""Generators of the awkward files real ImageNet copies contain, for the bad-input tests."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def _encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _rgb(size: tuple[int, int] = (90, 70), seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def png_with_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height``: a decompression bomb that costs no memory to make."""
    data = bytearray(_encode(Image.new("L", (8, 8)), "PNG"))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17])) & 0xFFFFFFFF
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


def convertible() -> dict[str, bytes]:
    """Files that must be converted to RGB and used (name -> bytes; every name ends in .JPEG as in ImageNet)."""
    rgb = _rgb()
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE)
    sixteen = Image.fromarray((np.arange(90 * 70, dtype=np.uint16).reshape(70, 90) * 9))
    return {
        "cmyk.JPEG": _encode(rgb.convert("CMYK"), "JPEG"),
        "gray.JPEG": _encode(rgb.convert("L"), "JPEG"),
        "png_named_jpeg.JPEG": _encode(rgb, "PNG"),
        "palette.JPEG": _encode(palette, "PNG"),
        "rgba.JPEG": _encode(rgb.convert("RGBA"), "PNG"),
        "sixteen_bit.JPEG": _encode(sixteen, "PNG"),
    }


def unreadable() -> dict[str, bytes]:
    """Files that must be skipped and counted."""
    jpeg = _encode(_rgb(), "JPEG")
    return {
        "empty.JPEG": b"",
        "truncated.JPEG": jpeg[: len(jpeg) // 2],
        "not_an_image.JPEG": b"<html>404 Not Found</html>\n",
        "bomb_14000px.JPEG": png_with_size(14000, 14000),
    }


def write(directory: Path, files: dict[str, bytes]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in files.items():
        (directory / name).write_bytes(data)
        paths.append(directory / name)
    return paths
