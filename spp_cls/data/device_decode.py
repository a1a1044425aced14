"""JPEG decoding on the device the batch goes to (``data.decode_device=cuda``): the workers send bytes, the GPU
decodes, crops, resizes and flips a whole batch.

Why: the loader, not the GPU, sets the speed of these networks (docs/speed.md, "Will my node be fed?"), and
decoding is most of a loader worker's time. With GPU decoding a worker only reads the file, parses the JPEG
header (microseconds) and draws the sample's view (``ViewPlan``: box, flip, lighting) from the header's
image size, with the per-sample generator of the CPU path, in the same order, so the multi-size schedule,
exact resume and the distributed split are those of the CPU path. The bytes travel to the main process
beside the plan; ``decode_views`` (called by the data module after the batch has reached the device)
decodes them with torchvision's batched ``decode_jpeg`` (nvJPEG on CUDA) and renders each plan with
``render_view``, the function the CPU path uses.

Bad input keeps its policy: a file the worker cannot use as a plain JPEG (PNG named .JPEG, CMYK/YCCK, a
missing end-of-image marker: truncated) is decoded on the CPU in the worker as today and travels as a
finished view (``ready``); a file the device decoder refuses is decoded on the CPU in the main process
(``decode_rgb``) and rendered on the device; if that fails too it is dropped from the batch and returned
as skipped, for the data module's skip books (``SkipTracker``). Only ``TrainView``/``CenterView`` (training
and validation) are planned; the test protocols' views decode on the CPU.

The same functions run with ``device=cpu`` (torchvision's libjpeg-turbo decoder), which is how the tests
cover them on machines without a GPU.
"""

from __future__ import annotations

import logging
import random
import warnings
from typing import Any, Optional, Sequence

import torch
from torchvision.io import ImageReadMode, decode_jpeg

from spp_cls.data.decode import JPEG_MAGIC, DecodeError, decode_rgb, jpeg_header
from spp_cls.data.transforms import PlannedView, View, ViewPlan, render_view

log = logging.getLogger(__name__)

#: per-sample fields of an encoded sample that collation keeps as plain lists (bytes, boxes, finished views)
ENCODED_FIELDS = ("encoded", "ready", "box", "flip", "size", "source")
#: JPEG colour spaces the device decoder is given; others (CMYK, YCCK) are converted on the CPU
_DEVICE_COLORSPACES = ("YCbCr", "Gray")
_EOI = b"\xff\xd9"
_EOI_WINDOW = 1024  # encoders may append padding or metadata after the end-of-image marker


def plannable(view: Optional[View]) -> bool:
    """Whether ``view`` draws its randomness from the image size alone (``plan``), so decoding can wait."""
    return view is not None and callable(getattr(view, "plan", None))


def device_jpeg_size(data: bytes, max_pixels: int) -> Optional[tuple[int, int]]:
    """(height, width) of a JPEG the device decoder can take, from its header; None for anything the CPU
    decoder should handle (not a JPEG, CMYK/YCCK, no end-of-image marker near the end: likely truncated).
    Raises ``DecodeError`` over ``max_pixels``, as the CPU path does, before any pixel is decoded."""
    if not data.startswith(JPEG_MAGIC) or _EOI not in data[-_EOI_WINDOW:]:
        return None
    return jpeg_header(data, max_pixels, _DEVICE_COLORSPACES)


def view_sample(
    data: bytes,
    view: View,
    size: int,
    rng: Optional[random.Random],
    max_pixels: int,
    encoded: bool = False,
    source: str = "",
) -> dict[str, Any]:
    """One sample of a dataset from a file's bytes: decoded and viewed here (the CPU path), or, with
    ``encoded`` and a plannable view, the bytes and the view's plan for ``decode_views``. Raises
    ``DecodeError`` for a file that cannot be used (the dataset skips and counts it)."""
    shape = device_jpeg_size(data, max_pixels) if encoded and plannable(view) else None
    if shape is None:
        image = decode_rgb(data, view.decode_short_side(size), max_pixels)
        sample = view(image, size, rng)
        if encoded:  # a finished view riding with the encoded samples of its batch
            sample.update(encoded=None, ready=sample.pop("image"), box=(0, 0, 0), flip=False)
            sample.update(size=size, source=source)
        return sample
    plan = planned(view).plan(shape[0], shape[1], rng)
    sample = {"encoded": data, "ready": None, "box": plan.box, "flip": plan.flip, "size": size, "source": source}
    if plan.lighting is not None:
        sample["lighting"] = plan.lighting
    return sample


def _decode_on(jpegs: Sequence[bytes], device: torch.device) -> list[Optional[torch.Tensor]]:
    """Decode JPEGs on ``device`` as one batch; if the batch call fails, one by one (None: refused)."""
    tensors = [torch.frombuffer(bytearray(data), dtype=torch.uint8) for data in jpegs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchvision 0.29 points at TorchCodec on every call
        try:
            return list(decode_jpeg(tensors, mode=ImageReadMode.RGB, device=device))
        except RuntimeError:
            pass
        images: list[Optional[torch.Tensor]] = []
        for tensor in tensors:
            try:
                images.append(decode_jpeg(tensor, mode=ImageReadMode.RGB, device=device))
            except RuntimeError:
                images.append(None)
        return images


def decode_views(
    batch: dict[str, Any], device: torch.device, interpolation: str, max_pixels: int
) -> tuple[Optional[torch.Tensor], list[int], list[str]]:
    """Render the views of an encoded batch (as ``collate_skipping`` makes it) on ``device``.

    Returns the (B', 3, S, S) uint8 views of the samples kept, their indices in the batch, and the sources
    of the samples dropped because no decoder could read them.
    """
    encoded: list[Optional[bytes]] = batch["encoded"]
    ready: list[Optional[torch.Tensor]] = batch["ready"]
    todo = [i for i, data in enumerate(encoded) if data is not None]
    decoded = _decode_on([data for data in encoded if data is not None], device) if todo else []
    views: list[Optional[torch.Tensor]] = [None if r is None else r.to(device, non_blocking=True) for r in ready]
    failed: list[str] = []
    for i, image in zip(todo, decoded):
        data = encoded[i]
        assert data is not None
        if image is None:
            try:
                image = decode_rgb(data, None, max_pixels).to(device, non_blocking=True)
            except DecodeError as err:
                log.warning("skipping %s: %s", batch["source"][i], err)
                failed.append(batch["source"][i])
                continue
        plan = ViewPlan(tuple(batch["box"][i]), bool(batch["flip"][i]))
        views[i] = render_view(image, plan, int(batch["size"][i]), interpolation)
    kept = [i for i, view in enumerate(views) if view is not None]
    images = torch.stack([views[i] for i in kept]) if kept else None  # type: ignore[misc]
    return images, kept, failed


def planned(view: View) -> PlannedView:
    """``view`` as a ``PlannedView`` (for type checkers), after ``plannable`` said it is one."""
    assert plannable(view)
    return view  # type: ignore[return-value]
