"""JPEG decoders side by side: the evidence for ``spp_cls/data/decode.py``'s choice of decoder and scales.

Run from the repository root::

    python benchmarks/jpeg_decoders.py [--images 300] [--repeats 5] [--need 256] [--json PATH]

On ``--images`` generated JPEGs with ImageNet's size distribution (``data_throughput.py``'s, the same files),
one process, one thread, each file read into memory first: the time per image of decoding it and making the
paper's training view (a random 224 square of the image resized to short side 256, antialiased), by each
strategy, interleaved (repeat > strategy) and quoted as the median over repeats, with its ratio to
``torchvision`` (full-size decode, the previous default):

- ``pillow``: ``Image.open`` + ``draft`` (DCT scaling by 1/2, 1/4, 1/8 only) + RGB conversion;
- ``torchvision``: ``torchvision.io.decode_jpeg`` at full size (libjpeg-turbo, straight into a tensor);
- ``simplejpeg_full``: libjpeg-turbo through simplejpeg at full size;
- ``simplejpeg_m8``: simplejpeg at the smallest of libjpeg-turbo's M/8 scales that keeps the short side
  >= ``--need`` (7/8, 6/8, 5/8 included);
- ``simplejpeg_fast``: the same, but only scales of at least 1/2 reduction (1/2, 3/8, 1/4, 1/8: what
  ``decode_rgb`` does, ``MIN_REDUCTION``);
- ``decode_rgb``: the shipped function, as the datasets call it.

PyTurboJPEG is left out: it loads a system libturbojpeg, which pip cannot install (docs/data.md).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import simplejpeg
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data_throughput import default_data_dir, ensure_jpegs  # noqa: E402  (a sibling script, not a package)

from spp_cls.data.config import DataConfig  # noqa: E402
from spp_cls.data.decode import decode_rgb  # noqa: E402
from spp_cls.data.transforms import TrainView  # noqa: E402

log = logging.getLogger("jpeg_decoders")
Decoder = Callable[[bytes, int], torch.Tensor]


def _hwc(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array).permute(2, 0, 1)


def pillow(data: bytes, need: int) -> torch.Tensor:
    image = Image.open(io.BytesIO(data))
    short = min(image.size)
    scale = next((k for k in (8, 4, 2) if short // k >= need), 1)
    if scale > 1:
        image.draft("RGB", (image.size[0] // scale, image.size[1] // scale))
    return torch.from_numpy(np.ascontiguousarray(np.asarray(image.convert("RGB")).transpose(2, 0, 1)))


def torchvision_full(data: bytes, need: int) -> torch.Tensor:
    return decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)


def simplejpeg_full(data: bytes, need: int) -> torch.Tensor:
    return _hwc(simplejpeg.decode_jpeg(data, colorspace="RGB"))


def simplejpeg_m8(data: bytes, need: int) -> torch.Tensor:
    return _hwc(simplejpeg.decode_jpeg(data, colorspace="RGB", min_height=need, min_width=need))


def simplejpeg_fast(data: bytes, need: int) -> torch.Tensor:
    return _hwc(simplejpeg.decode_jpeg(data, colorspace="RGB", min_height=need, min_width=need, min_factor=2))


def shipped(data: bytes, need: int) -> torch.Tensor:
    return decode_rgb(data, need)


STRATEGIES: dict[str, Decoder] = {
    "pillow": pillow,
    "torchvision": torchvision_full,
    "simplejpeg_full": simplejpeg_full,
    "simplejpeg_m8": simplejpeg_m8,
    "simplejpeg_fast": simplejpeg_fast,
    "decode_rgb": shipped,
}
BASELINE = "torchvision"


def time_strategy(decoder: Decoder, files: list[bytes], need: int, view: TrainView, seed: int) -> dict[str, float]:
    """Seconds per image to decode every file, and to decode and make its training view."""
    rng = random.Random(seed)
    decode_s = view_s = 0.0
    for data in files:
        start = time.perf_counter()
        image = decoder(data, need)
        middle = time.perf_counter()
        view(image, 224, rng)
        end = time.perf_counter()
        decode_s, view_s = decode_s + middle - start, view_s + end - middle
    return {"decode": decode_s / len(files), "decode_and_view": (decode_s + view_s) / len(files)}


def run(files: list[bytes], repeats: int, need: int) -> dict[str, dict[str, list[float]]]:
    view = TrainView(DataConfig(reduced_decode=True))
    results: dict[str, dict[str, list[float]]] = {name: {"decode": [], "decode_and_view": []} for name in STRATEGIES}
    for decoder in STRATEGIES.values():  # warm-up: page in the libraries
        time_strategy(decoder, files[:5], need, view, 0)
    for repeat in range(repeats):
        for name, decoder in STRATEGIES.items():
            for key, value in time_strategy(decoder, files, need, view, repeat).items():
                results[name][key].append(value)
        log.info("repeat %d/%d done", repeat + 1, repeats)
    return results


def table(results: dict[str, dict[str, list[float]]]) -> list[str]:
    base = {key: statistics.median(results[BASELINE][key]) for key in ("decode", "decode_and_view")}
    lines = [
        "| strategy | decode ms/image | vs torchvision | decode + view ms/image | vs torchvision |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, values in results.items():
        d, dv = statistics.median(values["decode"]), statistics.median(values["decode_and_view"])
        ratio, ratio_view = base["decode"] / d, base["decode_and_view"] / dv
        lines.append(f"| {name} | {d * 1e3:.3f} | {ratio:.2f}x | {dv * 1e3:.3f} | {ratio_view:.2f}x |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=300, help="generated JPEGs (default 300)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats; medians are quoted")
    parser.add_argument("--need", type=int, default=256, help="short side the pipeline needs (default 256)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=None, help="where the JPEGs are generated (default: cache)")
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    root = args.data or default_data_dir(args.images, 1, args.seed)
    split_dir = ensure_jpegs(root, args.images, 1, args.seed, max(1, os.cpu_count() or 1))
    files = [p.read_bytes() for p in sorted(split_dir.rglob("*.JPEG"))]
    results = run(files, args.repeats, args.need)
    print("\n".join(table(results)))
    if args.json:
        medians = {n: {k: statistics.median(v) for k, v in r.items()} for n, r in results.items()}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "command": " ".join(
                ["python", "benchmarks/jpeg_decoders.py", *(argv if argv is not None else sys.argv[1:])]
            ),
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "simplejpeg": simplejpeg.__version__},
            "images": len(files),
            "need": args.need,
            "seconds_per_image": results,
            "median_seconds_per_image": medians,
            "speedup_vs_torchvision": {n: {k: medians[BASELINE][k] / m[k] for k in m} for n, m in medians.items()},
        }
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
