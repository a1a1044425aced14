"""Image bytes -> RGB uint8 tensor, by content (never by file extension), or a ``DecodeError``.

The one decoder behind class folders, shards, the shard converter and the benchmark, so that every source
accepts and rejects the same files:

- JPEG (recognised by its magic bytes and header) is decoded by libjpeg-turbo through ``simplejpeg`` (chosen
  over PyTurboJPEG, which needs a system libturbojpeg, and Pillow, which copies through a PIL image:
  docs/data.md has the comparison). When the pipeline needs fewer pixels (``min_short_side``), libjpeg-turbo
  scales the DCT so that most of the decoding work is skipped. Only reductions of at least
  ``MIN_REDUCTION`` are used: libjpeg-turbo's fractional scales (7/8 ... 5/8) run a generic IDCT and decode
  *slower* than the full size (``benchmarks/jpeg_decoders.py``); 1/2, 1/4 and 1/8 are its fast paths.
  Gray JPEGs come out as RGB. A JPEG libjpeg-turbo refuses (CMYK/YCCK, a corrupt stream) goes to Pillow,
  which decides.
- Anything else PIL can open (PNG named ``.JPEG``, palette, RGBA, 16-bit, gray, ...) is converted to RGB:
  alpha is dropped, 16-bit values are scaled to 8 bits.
- Empty, truncated, non-image and over-``max_pixels`` inputs raise ``DecodeError``; the caller skips and
  counts them. The pixel limit is checked from the header, before any pixel is decoded, so a 14000x14000
  "decompression bomb" costs microseconds, not gigabytes. ``max_pixels`` is the one limit that counts: PIL's
  own bomb check (an error above 2 x ``Image.MAX_IMAGE_PIXELS``, ~179 M pixels) is lifted to it when it is
  set higher (``pil_pixel_limit``).

The tensor is a (3, H, W) view of libjpeg-turbo's (H, W, 3) output (channels-last strides): the views'
resampling works channels-last anyway, so no transposing copy is made.
"""

from __future__ import annotations

import io
import threading
import warnings
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import simplejpeg
import torch
from PIL import Image, UnidentifiedImageError

JPEG_MAGIC = b"\xff\xd8\xff"
DEFAULT_MAX_PIXELS = 89_478_485  # PIL's own warning threshold (about 9459 x 9459)
#: the smallest DCT reduction used (original side / decoded side): libjpeg-turbo's fast 1/2, 1/4, 1/8 only
MIN_REDUCTION = 2.0
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


class DecodeError(ValueError):
    """The bytes are not an image we can use (the message says why)."""


_PIL_LIMIT_LOCK = threading.Lock()


@contextmanager
def pil_pixel_limit(max_pixels: int) -> Iterator[None]:
    """PIL's bomb check no stricter than ``max_pixels`` inside the block.

    PIL raises ``DecompressionBombError`` above 2 x ``Image.MAX_IMAGE_PIXELS`` whatever the caller allows, and
    has no per-call limit: when ``max_pixels`` is over that, the module global is raised to ``max_pixels`` for
    the block (PIL then errors only above twice our limit, which our own header check refuses first) and
    restored after it. The lock keeps two raising threads from restoring each other's value; other threads
    opening images meanwhile see a higher limit, never none. It also serialises such decodes, a cost paid only
    when ``max_pixels`` is set over ~179 M: with the default (PIL's own threshold) nothing is changed and the
    lock is not taken.
    """
    limit = Image.MAX_IMAGE_PIXELS
    if limit is None or max_pixels <= 2 * limit:
        yield
        return
    with _PIL_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = max_pixels
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def image_size(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(width, height) from the header only, or ``DecodeError`` (as ``decode_rgb`` would refuse the file)."""
    with pil_pixel_limit(max_pixels):
        image = _open_header(data, max_pixels)
    image.close()
    return image.size


def file_image_size(path: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int] | None:
    """(width, height) of an image file from its header (PIL reads the first few kilobytes only), or None when
    the file is not an image PIL can open: an order hint only; decoding decides what is skipped."""
    try:
        with warnings.catch_warnings(), pil_pixel_limit(max_pixels), open(path, "rb") as f:
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # decoding reports what is too large
            with Image.open(f) as image:
                return image.size
    except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError):
        return None


def _open_header(data: bytes, max_pixels: int) -> Image.Image:
    """PIL image with only its header parsed; checks the pixel limit before any decoding."""
    if not data:
        raise DecodeError("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as err:
        raise DecodeError(f"over the pixel limit ({err})") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise DecodeError(f"not a readable image ({err})") from None
    width, height = image.size
    if width * height > max_pixels:
        raise DecodeError(
            f"{width}x{height} = {width * height} pixels is over the limit of {max_pixels} (data.max_pixels)"
        )
    if width < 1 or height < 1:
        raise DecodeError(f"degenerate size {width}x{height}")
    return image


def _draft_scale(size: tuple[int, int], min_short_side: int | None) -> int:
    """The largest power-of-two reduction (1, 2, 4, 8) that keeps the short side >= ``min_short_side``
    (Pillow's ``draft``, for the JPEGs that libjpeg-turbo's RGB output refuses)."""
    if not min_short_side:
        return 1
    short = min(size)
    for scale in (8, 4, 2):
        if short // scale >= min_short_side:
            return scale
    return 1


def jpeg_header(data: bytes, max_pixels: int, colorspaces: tuple[str, ...]) -> tuple[int, int] | None:
    """(height, width) from a JPEG's header when libjpeg-turbo reads it and its colour space is one of
    ``colorspaces``; None otherwise (Pillow decides then). Raises ``DecodeError`` over ``max_pixels``, before
    any pixel is decoded."""
    try:
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return None
    if width * height > max_pixels:
        raise DecodeError(
            f"{width}x{height} = {width * height} pixels is over the limit of {max_pixels} (data.max_pixels)"
        )
    if colorspace not in colorspaces or height < 1 or width < 1:
        return None  # CMYK / YCCK / unknown: Pillow converts them
    return height, width


def _decode_turbo(data: bytes, min_short_side: int | None, max_pixels: int) -> torch.Tensor | None:
    """libjpeg-turbo's decode, at the smallest fast scale that keeps the short side >= ``min_short_side``;
    None when libjpeg-turbo cannot give RGB for these bytes (Pillow decides then)."""
    if jpeg_header(data, max_pixels, ("Gray", "YCbCr", "RGB")) is None:
        return None
    need = min_short_side or 0
    try:
        array = simplejpeg.decode_jpeg(
            data, colorspace="RGB", min_height=need, min_width=need, min_factor=MIN_REDUCTION
        )
    except ValueError:
        return None  # truncated or corrupt: Pillow's stricter reader decides and names the problem
    return torch.from_numpy(array).permute(2, 0, 1)


def _pil_to_rgb_tensor(image: Image.Image) -> torch.Tensor:
    """Decode a PIL image of any mode into a (3, H, W) uint8 tensor."""
    if image.mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(image, dtype=np.float32)
        peak = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        gray = np.clip(values * (255.0 / peak) + 0.5, 0, 255).astype(np.uint8)
        array = np.repeat(gray[:, :, None], 3, axis=2)
    else:
        if image.mode == "P" and "transparency" in image.info:
            image = image.convert("RGBA")
        if image.mode != "RGB":
            image = image.convert("RGB")
        array = np.asarray(image)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def decode_rgb(data: bytes, min_short_side: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """Decode ``data`` into an RGB (3, H, W) uint8 tensor.

    Args:
        data: the file's bytes.
        min_short_side: the smallest short side the caller needs; a JPEG at least twice as large is
            decoded at a reduced scale that still keeps it (``None``: always full size).
        max_pixels: images with more pixels are rejected (from the header, before decoding).
    """
    if data.startswith(JPEG_MAGIC):
        decoded = _decode_turbo(data, min_short_side, max_pixels)
        if decoded is not None:
            return decoded
    with pil_pixel_limit(max_pixels):  # PIL checks again while loading (GIF frames)
        image = _open_header(data, max_pixels)
        try:
            if image.format == "JPEG":
                scale = _draft_scale(image.size, min_short_side)
                if scale > 1:
                    image.draft("RGB", (image.size[0] // scale, image.size[1] // scale))
            image.load()
            return _pil_to_rgb_tensor(image)
        except (OSError, RuntimeError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
            raise DecodeError(f"cannot decode ({str(err).splitlines()[0][:200]})") from None
        finally:
            image.close()
