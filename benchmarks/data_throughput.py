"""Training-pipeline throughput, in images/s and images/s per CPU core, of torchvision's classic ImageNet
pipeline and of ours (class folders, shards, pre-resized shards) against the bare decoding cost, side by side
in one run, with 1 loader worker and with all cores.

Run from the repository root::

    python benchmarks/data_throughput.py [--images 2000] [--classes 20] [--batch-size 64] [--batches 25]
        [--warmup 3] [--repeats 3] [--workers 1 2] [--pipelines a b c c2 d] [--device cpu|cuda] [--data DIR]
        [--breakdown 200] [--pixels 400] [--json PATH]

Data: ``--images`` generated JPEGs (quality 90; smooth gradients and sinusoids, shapes, band-limited texture
and mild noise, which compress like photographs) in ``--classes`` class folders, written once into ``--data``
(default ``$SPP_CLS_CACHE/bench-jpegs/...`` or ``~/.cache/spp-cls/bench-jpegs/...``) and reused while
complete; the shards of (c) and (c2) are converted once next to them. Files come from the page cache after
the first run: this measures CPU cost, not storage.

Image sizes follow ImageNet's training set, drawn per image from its seed (``image_size``):

- the long side: 500 px with probability 0.64 (most ImageNet images are Flickr's 500-px size); log-uniform in
  300-500 px with 0.28 (short side then at least 200); log-uniform in 500-1000 px with 0.04 and in
  1000-3000 px with 0.03 (the long tail of large photographs); with 0.01 the image is a small one instead,
  its short side log-uniform in 75-200 px;
- the aspect ratio (long / short): 4:3 with 0.55, 3:2 with 0.20, 1:1 with 0.08, 5:4 with 0.08, 16:9 with
  0.04, uniform in 1.1-2.2 with 0.05;
- portrait (height > width) with probability 0.22 (not for square images).

So the median image is 500x375, about 1 % have a short side under 200 px, about 3 % a long side over
1000 px, about a fifth are portrait; the report gives the generated set's own figures (``data`` in the JSON).

Pipelines (batch ``--batch-size``, every one with the same DataLoader settings: default prefetch_factor, no
pinned memory, no persistent workers, ``torch.set_num_threads(1)`` in the workers and in the main process):

(a)  baseline: ``torchvision.datasets.ImageFolder`` + ``Resize(256), RandomCrop(224), RandomHorizontalFlip(),
     ToTensor(), Normalize(mean, std)`` (v1 transforms), PIL loader, default collate.
(b)  ours, class folders: ``SkippingImageFolder`` + ``TrainView`` + ``ScheduledBatchSampler`` +
     ``collate_skipping``, exactly as training uses them (uint8 views; normalisation happens on the device:
     ``BatchNormalizer`` is timed separately here, on the CPU, in the main process).
(c)  ours, shards: ``make_shards`` (original bytes, ``SHARD_SIZE`` files a shard) + ``ShardStream`` in a
     ``DataLoader(batch_size=None)``.
(c2) ours, pre-resized shards: the same files converted with ``make_shards --resize-short 256`` (re-encoded
     at make_shards' default quality), read as (c). 256 = ``DataConfig().decode_short_side(224)``, the
     largest short side the paper's recipe needs (resize 256 x largest training size 224 / crop 224).
(d)  bare cost: read the file and ``decode_rgb(data, min_short_side=256)``, the fastest reduced-size decode
     we ship, nothing else (a dummy tensor per sample, so collation costs nothing): the floor (b) and (c)
     are compared with.
(e)  GPU decoding (``data.decode_device=cuda``), by default with ``--device cuda``: the workers read the bytes
     and draw each view's plan, the main process decodes, crops and resizes the batch on the GPU (nvJPEG);
     ``--device cpu --pipelines … e`` runs the same path with the CPU decoder in the main process (a stand-in
     for rehearsals, not a figure to quote).

Each pipeline runs with every ``--workers`` count (default: 1 and all cores). A measurement starts a fresh
loader iterator, receives ``--warmup`` batches, then times ``--batches`` batches from the last warm-up batch
received to the last batch received (both rounded up to a multiple of the worker count, so that timing starts
and ends on a full round of workers). Measurements are interleaved (repeat > workers > pipeline, the pipeline
order rotated every repeat) so that machine noise spreads over all pipelines, repeated ``--repeats`` times;
the table quotes the median. Per core means per loader worker (the main process only receives batches; with
0 workers, per main process).

Ratios (table and JSON) are medians over the repeats of the ratio of two pipelines' rates within one repeat at
the same worker count (measured minutes apart at most, so a slow spell of the shared machine cancels out).
``ratios`` in the JSON: ``folders_vs_torchvision`` (b)/(a), ``shards_vs_torchvision`` (c)/(a),
``folders_vs_bare`` (b)/(d), ``shards_vs_bare`` (c)/(d), ``resized_shards_vs_shards`` (c2)/(c), at the
largest ``--workers`` count (all cores by default; ``ratios_workers`` says which); ``ratios_by_workers`` has
them at every worker count. A ratio whose pipelines did not run is null.

Pixel arithmetic of (c2): ``--pixels N`` files (matched by their source path) are decoded as (c) and as (c2)
decode them; the ratio of the mean decoded pixels is the speed-up pre-resizing could bring to decoding alone,
the bound the measured (c2)/(c) is compared with.

Goals: (b) and (c) at least 2x (a) per core and at least 0.8x (d), at every worker count; (c2) faster than (c).

``--breakdown N`` (default 200, 0: off) then times the per-sample stages of (b), (a), (c) and (c2) in one
process on N images: where a sample's time goes; and, on the same images, the floor of a CPU view
(``view_floor``: the view's unavoidable work in a bare loop against the bare decode, about the most (b) and (c)
can reach against (d)). ``--json PATH`` saves every raw number.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import os
import platform
import random
import shlex
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import PIL
import torch
import torchvision
from PIL import Image, ImageDraw, ImageFilter
from torch.utils.data import DataLoader, Dataset, default_collate
from torchvision import datasets, transforms
from webdataset.filters import shuffle as wds_shuffle

from spp_cls.data.config import DataConfig
from spp_cls.data.decode import DEFAULT_MAX_PIXELS, decode_rgb
from spp_cls.data.device_decode import decode_views
from spp_cls.data.folder import SkippingImageFolder, collate_skipping, list_class_folder_files, list_classes
from spp_cls.data.make_shards import ShardConfig, convert
from spp_cls.data.normalize import BatchNormalizer
from spp_cls.data.sampling import SampleKey, ScheduledBatchSampler, sample_seed
from spp_cls.data.shard_manifest import IMAGE_EXTENSIONS, load_manifest
from spp_cls.data.shards import ShardStream
from spp_cls.data.transforms import TrainView, lighting_offset, resample_square, square_box

SIZE = 224  # the training input size of every pipeline
SHARD_SIZE = 100
DATA_VERSION = 2  # bump when the generated images change
MEAN, STD = DataConfig().mean, DataConfig().std
RESIZE_SHORT = DataConfig().decode_short_side(SIZE) or 256  # short side of (c2)'s shards, as (d) decodes
PIPELINES = {
    "a": "(a) torchvision ImageFolder + v1 transforms",
    "b": "(b) ours, class folders",
    "c": "(c) ours, shards",
    "c2": f"(c2) ours, shards resized to short side {RESIZE_SHORT}",
    "d": f"(d) bare: read + decode_rgb(min_short_side={RESIZE_SHORT})",
    "e": "(e) GPU decoding (data.decode_device=cuda)",
}
CPU_PIPELINES = ("a", "b", "c", "c2", "d")
RATIOS = {
    "folders_vs_torchvision": ("b", "a"),
    "shards_vs_torchvision": ("c", "a"),
    "folders_vs_bare": ("b", "d"),
    "shards_vs_bare": ("c", "d"),
    "resized_shards_vs_shards": ("c2", "c"),
}
# ImageNet-like sizes (see the module docstring): (what is drawn, low, high, probability), log-uniform in
# [low, high]; "long": the long side, "short": the short side
SIDE_BRANCHES = (
    ("long", 500, 500, 0.64),
    ("long", 300, 500, 0.28),
    ("long", 500, 1000, 0.04),
    ("long", 1000, 3000, 0.03),
    ("short", 75, 200, 0.01),
)
MIN_SHORT_SIDE = 200  # of the "long" branches
ASPECTS = ((4 / 3, 0.55), (3 / 2, 0.20), (1.0, 0.08), (5 / 4, 0.08), (16 / 9, 0.04), (None, 0.05))  # None: random
PORTRAIT = 0.22

log = logging.getLogger("data_throughput")


# --------------------------------------------------------------------------------------------- generated data


def image_size(rng: np.random.Generator) -> tuple[int, int]:
    """(width, height) of one generated image, drawn from the ImageNet-like distribution above."""
    kind, low, high, _ = SIDE_BRANCHES[int(rng.choice(len(SIDE_BRANCHES), p=[b[3] for b in SIDE_BRANCHES]))]
    side = math.exp(rng.uniform(math.log(low), math.log(high)))
    ratio = ASPECTS[int(rng.choice(len(ASPECTS), p=[a[1] for a in ASPECTS]))][0] or rng.uniform(1.1, 2.2)
    if kind == "short":
        short, long = round(side), round(side * ratio)
    else:
        long = round(side)
        short = min(long, max(MIN_SHORT_SIDE, round(side / ratio)))
    return (short, long) if rng.random() < PORTRAIT else (long, short)


def _smooth_noise(rng: np.random.Generator, height: int, width: int, factor: int, channels: int) -> np.ndarray:
    """Gaussian noise drawn at 1/``factor`` resolution and upsampled bicubically: band-limited texture."""
    small = rng.normal(0.0, 1.0, (max(1, height // factor), max(1, width // factor), channels)).astype(np.float32)
    out = np.empty((height, width, channels), np.float32)
    for c in range(channels):
        out[..., c] = np.asarray(Image.fromarray(small[..., c], mode="F").resize((width, height), Image.BICUBIC))
    return out


def _draw_shapes(image: Image.Image, rng: np.random.Generator) -> None:
    """A few filled ellipses, rectangles and triangles in random colours."""
    draw = ImageDraw.Draw(image)
    width, height = image.size
    for _ in range(int(rng.integers(3, 9))):
        x0, y0, side = rng.uniform(-50, width), rng.uniform(-50, height), rng.uniform(20, 200)
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        kind = int(rng.integers(3))
        box = [x0, y0, x0 + side, y0 + side * rng.uniform(0.5, 1.5)]
        if kind == 0:
            draw.ellipse(box, fill=color)
        elif kind == 1:
            draw.rectangle(box, fill=color)
        else:
            draw.polygon([(x0 + rng.uniform(-side, side), y0 + rng.uniform(-side, side)) for _ in range(3)], fill=color)


def synthetic_photo(seed: int) -> Image.Image:
    """An ImageNet-sized RGB image with natural-ish statistics: smooth gradients and sinusoids, low-frequency
    colour blobs, shapes, band-limited texture under a smooth mask, mild noise."""
    rng = np.random.default_rng(seed)
    width, height = image_size(rng)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base, (gx, gy) = rng.uniform(40, 200, 3), rng.uniform(-0.25, 0.25, (2, 3))
    pixels = base + gx * (x - width / 2)[..., None] + gy * (y - height / 2)[..., None]
    for _ in range(3):
        freq, angle = rng.uniform(0.002, 0.02), rng.uniform(0, np.pi)
        wave = np.sin((x * np.cos(angle) + y * np.sin(angle)) * freq * 2 * np.pi + rng.uniform(0, 2 * np.pi))
        pixels += (rng.uniform(10, 35) * wave)[..., None] * rng.uniform(0.3, 1.0, 3)
    pixels += _smooth_noise(rng, height, width, 40, 3) * 25
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    _draw_shapes(image, rng)
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8)))
    mask = np.clip(_smooth_noise(rng, height, width, 80, 1) * 1.5 + rng.uniform(0.3, 1.3), 0, 1)
    texture = _smooth_noise(rng, height, width, 2, 1) + 0.4 * _smooth_noise(rng, height, width, 2, 3)
    noise = rng.normal(0, rng.uniform(3, 7), (height, width, 1)).astype(np.float32)
    pixels = np.asarray(image).astype(np.float32) + mask * texture * rng.uniform(25, 90) + noise
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _write_image(job: tuple[str, int]) -> int:
    """Write one generated JPEG (to a temporary name, then renamed: a present file is complete); its size."""
    path, seed = Path(job[0]), job[1]
    if path.is_file():
        return path.stat().st_size
    buffer = io.BytesIO()
    synthetic_photo(seed).save(buffer, "JPEG", quality=90)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(path)
    return len(buffer.getvalue())


def default_data_dir(images: int, classes: int, seed: int) -> Path:
    cache = Path(os.environ.get("SPP_CLS_CACHE") or Path.home() / ".cache" / "spp-cls")
    return cache / "bench-jpegs" / f"v{DATA_VERSION}-n{images}-c{classes}-s{seed}"


def ensure_jpegs(root: Path, images: int, classes: int, seed: int, processes: int) -> Path:
    """Generate ``root/train/<class>/<image>.JPEG`` unless a complete set is there; return the split folder."""
    marker, split_dir = root / "complete.json", root / "train"
    expected = {"version": DATA_VERSION, "images": images, "classes": classes, "seed": seed}
    if marker.is_file() and json.loads(marker.read_text()).get("spec") == expected:
        log.info("reusing %d JPEGs in %s", images, split_dir)
        return split_dir
    jobs = []
    for i in range(images):
        folder = split_dir / f"class{i % classes:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        jobs.append((str(folder / f"img_{i:07d}.JPEG"), seed * 10_000_019 + i))
    log.info("generating %d JPEGs in %d class folders under %s (once) ...", images, classes, split_dir)
    start = time.perf_counter()
    with get_context("fork").Pool(processes) as pool:
        pool.map(_write_image, jobs, chunksize=4)
    marker.write_text(json.dumps({"spec": expected}, indent=1))
    log.info("generated in %.0f s", time.perf_counter() - start)
    return split_dir


def ensure_shards(root: Path, processes: int, resize_short: Optional[int] = None) -> Path:
    """Convert the training split to shards of ``SHARD_SIZE`` files once (make_shards resumes and reuses),
    keeping the original bytes or, with ``resize_short``, as ``make_shards --resize-short`` does."""
    suffix = "" if resize_short is None else f"-resize{resize_short}"
    dst = root / f"shards-{SHARD_SIZE}{suffix}"
    if not (dst / "manifest.json").is_file():
        log.info("converting %s to shards of %d in %s (once) ...", root / "train", SHARD_SIZE, dst)
        settings = ShardConfig(source=str(root), shard_size=SHARD_SIZE, resize_short=resize_short, splits=("train",))
        convert(settings, dst, workers=processes)
    return dst


def data_stats(split_dir: Path) -> dict[str, float]:
    """The generated set's own figures: file sizes and the size distribution (from the JPEG headers)."""
    paths = sorted(split_dir.glob("*/*.JPEG"))
    kb = [p.stat().st_size / 1e3 for p in paths]
    sizes = []
    for path in paths:
        with Image.open(path) as image:
            sizes.append(image.size)
    widths, heights = [w for w, _ in sizes], [h for _, h in sizes]
    shorts, longs = [min(s) for s in sizes], [max(s) for s in sizes]
    return {
        "files": len(paths),
        "mean_kb": statistics.mean(kb),
        "median_kb": statistics.median(kb),
        "min_kb": min(kb),
        "max_kb": max(kb),
        "mean_width": statistics.mean(widths),
        "mean_height": statistics.mean(heights),
        "median_width": statistics.median(widths),
        "median_height": statistics.median(heights),
        "mean_megapixels": statistics.mean(w * h for w, h in sizes) / 1e6,
        "share_short_under_200": sum(s < 200 for s in shorts) / len(sizes),
        "share_long_over_1000": sum(x > 1000 for x in longs) / len(sizes),
        "share_portrait": sum(h > w for w, h in sizes) / len(sizes),
        "max_long_side": max(longs),
    }


def shard_kb(shard_dir: Path) -> float:
    """Mean KB a sample of a shard folder's training shards (tar headers and label included: what a reader reads)."""
    split = load_manifest(str(shard_dir)).split("train")
    return sum(Path(s.url).stat().st_size for s in split.shards) / split.samples / 1e3


# --------------------------------------------------------------------------------------------------- loaders


def worker_init(_: int) -> None:
    torch.set_num_threads(1)


def make_loader(dataset: Dataset, workers: int, **kwargs: Any) -> DataLoader:
    """The DataLoader settings every pipeline shares."""
    return DataLoader(
        dataset,
        num_workers=workers,
        worker_init_fn=worker_init if workers else None,
        pin_memory=False,
        persistent_workers=False,
        **kwargs,
    )


def baseline_transform() -> transforms.Compose:
    return transforms.Compose(
        [
            transforms.Resize(256),
            transforms.RandomCrop(224),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(MEAN, STD),
        ]
    )


def shuffled_loader(dataset: Dataset, batch_size: int, workers: int, repeat: int) -> DataLoader:
    return make_loader(
        dataset,
        workers,
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(repeat),
    )


def folder_dataset(split_dir: Path) -> SkippingImageFolder:
    samples = list_class_folder_files(split_dir, list_classes(split_dir))
    return SkippingImageFolder(split_dir, TrainView(DataConfig()), samples=samples)


def folder_loader(split_dir: Path, batch_size: int, workers: int, repeat: int) -> DataLoader:
    """(b) our class-folder training loader, as training builds it."""
    dataset = folder_dataset(split_dir)
    sampler = ScheduledBatchSampler(dataset, batch_size, [SIZE], "alternate", seed=0)
    sampler.set_epoch(repeat)
    return make_loader(dataset, workers, batch_sampler=sampler, collate_fn=collate_skipping)


def shard_stream(shard_dir: Path, batch_size: int, workers: int) -> ShardStream:
    return ShardStream(
        load_manifest(str(shard_dir)).split("train"),
        TrainView(DataConfig()),
        batch_size=batch_size,
        train=True,
        sizes=[SIZE],
        schedule="alternate",
        seed=0,
        eval_size=SIZE,
        num_workers=workers,
    )


def shard_loader(shard_dir: Path, batch_size: int, workers: int, repeat: int) -> DataLoader:
    """(c)/(c2) our shard reader."""
    stream = shard_stream(shard_dir, batch_size, workers)
    stream.set_epoch(repeat)
    return make_loader(stream, workers, batch_size=None)


class DecodeOnly(Dataset):
    """(d) read the file and decode it at the reduced size our decoder would use; nothing else."""

    def __init__(self, split_dir: Path) -> None:
        self.paths = [path for path, _ in list_class_folder_files(split_dir, list_classes(split_dir))]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        with open(self.paths[index], "rb") as f:
            image = decode_rgb(f.read(), min_short_side=RESIZE_SHORT)
        return torch.tensor(image.shape[1])  # a dummy: collating it costs nothing


class DeviceDecodingLoader(DataLoader):
    """A DataLoader whose batches are decoded on ``device`` in the main process, as the data module does after
    the batch transfer (``data.decode_device=cuda``): each batch is complete on the device when it is yielded."""

    device = torch.device("cuda")

    def __iter__(self) -> Any:
        for batch in super().__iter__():
            batch["target"] = batch["target"].to(self.device, non_blocking=True)
            images, _, _ = decode_views(batch, self.device, "bilinear", DEFAULT_MAX_PIXELS)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            yield {"image": images, "target": batch["target"]}


def gpu_decode_loader(split_dir: Path, batch_size: int, workers: int, repeat: int, device: str = "cuda") -> DataLoader:
    """(e) GPU decoding (``data.decode_device=cuda``): the workers read the bytes and draw each view's plan,
    the main process decodes, crops, resizes and flips the batch on the GPU (nvJPEG), as training does."""
    samples = list_class_folder_files(split_dir, list_classes(split_dir))
    dataset = SkippingImageFolder(split_dir, TrainView(DataConfig()), samples=samples, encoded=True)
    sampler = ScheduledBatchSampler(dataset, batch_size, [SIZE], "alternate", seed=0)
    sampler.set_epoch(repeat)
    loader = DeviceDecodingLoader(
        dataset,
        num_workers=workers,
        worker_init_fn=worker_init if workers else None,
        pin_memory=False,
        persistent_workers=False,
        batch_sampler=sampler,
        collate_fn=collate_skipping,
    )
    loader.device = torch.device(device)
    return loader


LoaderFactory = Callable[[int, int], DataLoader]


def loader_factories(
    split_dir: Path, shard_dirs: dict[str, Path], batch_size: int, device: str
) -> dict[str, LoaderFactory]:
    """Pipeline key -> (workers, repeat) -> a fresh loader."""
    factories: dict[str, LoaderFactory] = {
        "a": lambda w, r: shuffled_loader(datasets.ImageFolder(str(split_dir), baseline_transform()), batch_size, w, r),
        "b": lambda w, r: folder_loader(split_dir, batch_size, w, r),
        "d": lambda w, r: shuffled_loader(DecodeOnly(split_dir), batch_size, w, r),
    }
    for key, shard_dir in shard_dirs.items():
        factories[key] = lambda w, r, d=shard_dir: shard_loader(d, batch_size, w, r)
    # (e) on --device cpu (asked for by name): the device path with the CPU decoder, a stand-in for rehearsals
    factories["e"] = lambda w, r: gpu_decode_loader(split_dir, batch_size, w, r, device)
    return factories


# ------------------------------------------------------------------------------------------------- measuring


@dataclass
class Measurement:
    pipeline: str
    workers: int
    repeat: int
    warmup: int
    batches: int
    images: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.images / self.seconds


def count_images(batch: Any) -> int:
    """Images in a batch of any of the pipelines."""
    if isinstance(batch, dict):
        return 0 if batch["image"] is None else int(batch["image"].shape[0])
    if isinstance(batch, (tuple, list)):
        return int(batch[0].shape[0])
    return int(batch.shape[0])


def round_up(value: int, multiple: int) -> int:
    return -(-value // max(1, multiple)) * max(1, multiple)


def measure(loader: DataLoader, warmup: int, batches: int) -> tuple[int, float]:
    """(images, seconds) of ``batches`` batches after ``warmup`` (>= 1) from a fresh iterator."""
    iterator = iter(loader)
    try:
        for _ in range(warmup):
            next(iterator)
        start, images = time.perf_counter(), 0
        for _ in range(batches):
            images += count_images(next(iterator))
        return images, time.perf_counter() - start
    finally:
        del iterator  # shuts the workers down before the next measurement starts its own


def run_measurements(
    factories: dict[str, LoaderFactory],
    pipelines: Sequence[str],
    workers: Sequence[int],
    warmup: int,
    batches: int,
    repeats: int,
) -> list[Measurement]:
    """Every (repeat, workers, pipeline), interleaved so that machine noise hits all pipelines alike; the
    pipeline order rotates every repeat, so that none always runs first after a worker-count change."""
    results = []
    for repeat in range(repeats):
        shift = repeat % len(pipelines)
        order = [*pipelines[shift:], *pipelines[:shift]]
        for w in workers:
            steps = round_up(warmup, w), round_up(batches, w)
            for key in order:
                images, seconds = measure(factories[key](w, repeat), *steps)
                m = Measurement(key, w, repeat, steps[0], steps[1], images, seconds)
                log.info(
                    "repeat %d/%d, %d worker(s), %s: %.1f images/s", repeat + 1, repeats, w, PIPELINES[key], m.rate
                )
                results.append(m)
    return results


class Summary:
    """Medians, spreads and paired ratios of the measurements."""

    def __init__(self, results: Sequence[Measurement]) -> None:
        self.rates: dict[tuple[str, int], dict[int, float]] = {}
        for m in results:
            self.rates.setdefault((m.pipeline, m.workers), {})[m.repeat] = m.rate

    def median(self, key: str, workers: int) -> float:
        return statistics.median(self.rates[(key, workers)].values())

    def spread(self, key: str, workers: int) -> tuple[float, float]:
        values = self.rates[(key, workers)].values()
        return min(values), max(values)

    def ratio(self, key: str, other: str, workers: int) -> Optional[float]:
        """Median over the repeats of ``key``'s rate / ``other``'s rate in the same repeat (None: not run)."""
        mine, theirs = self.rates.get((key, workers), {}), self.rates.get((other, workers), {})
        pairs = [mine[r] / theirs[r] for r in mine if r in theirs]
        return statistics.median(pairs) if pairs else None

    def ratios(self, workers: int) -> dict[str, Optional[float]]:
        return {name: self.ratio(key, other, workers) for name, (key, other) in RATIOS.items()}


def time_normalizer(split_dir: Path, batch_size: int, calls: int) -> float:
    """Median ms of ``BatchNormalizer`` on one uint8 batch of views, on the CPU, one thread."""
    dataset = folder_dataset(split_dir)
    keys = [SampleKey(i, SIZE, sample_seed(0, 0, i)) for i in range(batch_size)]
    batch = collate_skipping([dataset[k] for k in keys])
    normalizer = BatchNormalizer(DataConfig())
    normalizer(batch["image"], batch["lighting"])
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        normalizer(batch["image"], batch["lighting"])
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def _raw_samples(shard_dir: Path) -> Any:
    """The raw samples (dicts of fields) of a shard folder's training shards, in shard order."""
    stream = shard_stream(shard_dir, 1, 0)
    return stream._read(list(range(len(stream.split.shards))), [])


def _image_field(raw: dict[str, Any]) -> bytes:
    return raw[next(ext for ext in IMAGE_EXTENSIONS if ext in raw)]


def pixel_arithmetic(split_dir: Path, resized_dir: Path, count: int) -> dict[str, float]:
    """Mean pixels decoded per image by (c) (the original file at the reduced size) and by (c2) (the
    pre-resized bytes), over the first ``count`` samples of (c2)'s shards, matched by source path."""
    original, resized, seen = [], [], 0
    for raw in _raw_samples(resized_dir):
        if seen == count:
            break
        seen += 1
        with open(split_dir / raw["src"].decode(), "rb") as f:
            original.append(math.prod(decode_rgb(f.read(), min_short_side=RESIZE_SHORT).shape[1:]))
        resized.append(math.prod(decode_rgb(_image_field(raw), min_short_side=RESIZE_SHORT).shape[1:]))
    mean_original, mean_resized = statistics.mean(original), statistics.mean(resized)
    return {
        "images": seen,
        "shards_decoded_megapixels": mean_original / 1e6,
        "resized_shards_decoded_megapixels": mean_resized / 1e6,
        "bound_resized_vs_shards": mean_original / mean_resized,
    }


# ------------------------------------------------------------------------------------------------- breakdown


class StageTimer:
    """Accumulated seconds per named stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def time(self, stage: str, fn: Callable[..., Any], *args: Any) -> Any:
        start = time.perf_counter()
        result = fn(*args)
        self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start
        return result


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _time_batches(
    timer: StageTimer, stage: str, samples: list[Any], collate: Callable[[list[Any]], Any], batch_size: int
) -> None:
    """Time ``collate`` on batches of ``samples``; dict samples are copied first (untimed), as
    ``collate_skipping`` pops their ``image``: the caller's samples stay whole for the next stage."""
    for start in range(0, len(samples), batch_size):
        batch = [dict(s) if isinstance(s, dict) else s for s in samples[start : start + batch_size]]
        timer.time(stage, collate, batch)


def stack_channels_last(images: list[torch.Tensor]) -> torch.Tensor:
    """The views are channels-last in memory: stacking them into a channels_last batch is a plain copy, into
    a contiguous NCHW batch a transposing one."""
    first = images[0]
    out = torch.empty((len(images), *first.shape), dtype=first.dtype, memory_format=torch.channels_last)
    return torch.stack(images, out=out)


def ours_breakdown(paths: Sequence[str], batch_size: int) -> dict[str, float]:
    """Seconds per stage of our per-sample path (``SkippingImageFolder.__getitem__`` + ``TrainView``), taken
    apart, and the whole ``__getitem__`` on the same images for reference."""
    settings, timer, samples = DataConfig(), StageTimer(), []
    for index, path in enumerate(paths):
        data = timer.time("read file", _read, path)
        rng = timer.time("per-sample seed + Random()", lambda: random.Random(sample_seed(0, 0, index)))  # noqa: B023 (called at once)
        image = timer.time(f"decode_rgb(min_short_side={RESIZE_SHORT})", decode_rgb, data, RESIZE_SHORT)
        box = timer.time("square_box", square_box, image.shape[1], image.shape[2], settings, "random", rng)
        view = timer.time("resample_square", resample_square, image, box, SIZE, settings.interpolation)
        view = timer.time("flip", lambda v: v.flip(-1) if rng.random() < 0.5 else v, view)  # noqa: B023 (called at once)
        lighting = timer.time("lighting_offset", lighting_offset, settings, rng)
        samples.append({"image": view, "lighting": lighting, "target": 0})
    _time_batches(timer, "collate_skipping (per image)", samples, collate_skipping, batch_size)
    _time_batches(
        timer,
        "alternative: stack into a channels_last batch (per image, not summed)",
        [sample["image"] for sample in samples],
        stack_channels_last,
        batch_size,
    )
    dataset = folder_dataset(Path(paths[0]).parent.parent)
    index_of = {p: i for i, (p, _) in enumerate(dataset.samples)}
    keys = [SampleKey(index_of[p], SIZE, sample_seed(0, 0, i)) for i, p in enumerate(paths)]
    for key in keys:
        timer.time("SkippingImageFolder.__getitem__ (whole, for reference: not summed)", dataset.__getitem__, key)
    return timer.seconds


def shard_breakdown(shard_dir: Path, count: int, batch_size: int) -> tuple[dict[str, float], int]:
    """Seconds per stage of the shard reader's own work: tar reading, shuffle buffer, decode + view
    (``ShardStream._decode``, the same work as (b)'s ``__getitem__``), collation; and a whole epoch of the
    stream in this process for reference. Also the number of samples timed (at most the shards' samples)."""
    stream = shard_stream(shard_dir, batch_size, 0)
    timer, raw = StageTimer(), []
    reader = stream._read(list(range(len(stream.split.shards))), [])
    for _ in range(count):
        sample = timer.time("tar read + group_by_keys", next, reader, None)
        if sample is None:
            break
        raw.append(sample)
    shuffled = wds_shuffle(stream.shuffle_buffer, min(stream.shuffle_buffer, 100), rng=random.Random(0))(iter(raw))
    raw = timer.time("shuffle buffer", list, shuffled)
    decoded = [timer.time("ShardStream._decode (decode + view)", stream._decode, r, SIZE, 0) for r in raw]
    _time_batches(timer, "ShardStream._collate (per image)", decoded, lambda b: stream._collate(b, []), batch_size)
    # a whole epoch: the shuffle buffer reads ahead early in an epoch, so a few batches would overstate it
    start, images = time.perf_counter(), sum(count_images(batch) for batch in stream)
    timer.seconds["whole ShardStream, one epoch in this process (for reference: not summed)"] = (
        (time.perf_counter() - start) * len(raw) / max(images, 1)
    )
    return timer.seconds, len(raw)


def baseline_breakdown(paths: Sequence[str], batch_size: int) -> dict[str, float]:
    """Seconds per stage of (a): PIL decode + each v1 transform + default collate."""
    timer, samples = StageTimer(), []
    loader = datasets.folder.default_loader
    resize, crop, flip = transforms.Resize(256), transforms.RandomCrop(224), transforms.RandomHorizontalFlip()
    to_tensor, normalize = transforms.ToTensor(), transforms.Normalize(MEAN, STD)
    for path in paths:
        image = timer.time("PIL open + decode + convert RGB (default_loader)", loader, path)
        for stage, fn in (
            ("Resize(256)", resize),
            ("RandomCrop(224)", crop),
            ("RandomHorizontalFlip", flip),
            ("ToTensor", to_tensor),
            ("Normalize", normalize),
        ):
            image = timer.time(stage, fn, image)
        samples.append((image, 0))
    _time_batches(timer, "default_collate (per image)", samples, default_collate, batch_size)
    return timer.seconds


def breakdown_table(title: str, seconds: dict[str, float], images: int) -> list[str]:
    summed = sum(v for k, v in seconds.items() if "not summed" not in k)
    lines = [
        f"**{title}** ({images} images, one process, one thread)",
        "",
        "| stage | ms / image | share of sum |",
        "|---|---:|---:|",
    ]
    for stage, value in seconds.items():
        share = "" if "not summed" in stage else f"{100 * value / summed:.1f} %"
        lines.append(f"| {stage} | {1e3 * value / images:.3f} | {share} |")
    lines.append(f"| **sum of stages** | **{1e3 * summed / images:.3f}** | 100 % |")
    lines.append(f"| = images/s on one core | {images / summed:.0f} | |")
    return lines + [""]


def view_floor(paths: Sequence[str], batch_size: int, repeats: int) -> dict[str, Any]:
    """The most a view made on the CPU can reach against (d), measured rather than argued: one process, no
    loader, no dataset, no per-sample objects; per image only the work a training view cannot skip (read,
    ``decode_rgb`` at the reduced size, ``square_box``, ``resample_square``, a flip for half of them, the copy
    into a channels-last batch) against the same loop that only reads and decodes, as (d) does. Interleaved
    ``repeats`` times; the ratio is the median of the per-repeat ratios. (b) and (c) add a loader and Python's
    bookkeeping to the view; (d) adds a loader to the decode too, which dilutes the difference, so their ratios
    to (d) may land a few hundredths above this one, never far."""
    settings, bare_ms, view_ms, ratios = DataConfig(), [], [], []
    batch = torch.empty((batch_size, SIZE, SIZE, 3), dtype=torch.uint8)
    for _ in range(repeats):
        start = time.perf_counter()
        for path in paths:
            decode_rgb(_read(path), RESIZE_SHORT)
        bare = (time.perf_counter() - start) / len(paths)
        rng, start = random.Random(0), time.perf_counter()
        for index, path in enumerate(paths):
            image = decode_rgb(_read(path), RESIZE_SHORT)
            box = square_box(image.shape[1], image.shape[2], settings, "random", rng)
            view = resample_square(image, box, SIZE, settings.interpolation)
            view = view.flip(-1) if rng.random() < 0.5 else view
            batch[index % batch_size].copy_(view.permute(1, 2, 0))
        view_s = (time.perf_counter() - start) / len(paths)
        bare_ms.append(1e3 * bare)
        view_ms.append(1e3 * view_s)
        ratios.append(bare / view_s)
    return {
        "images": len(paths),
        "repeats": repeats,
        "bare_ms": statistics.median(bare_ms),
        "view_ms": statistics.median(view_ms),
        "view_vs_bare": statistics.median(ratios),
        "view_vs_bare_min_max": (min(ratios), max(ratios)),
    }


def floor_lines(floor: dict[str, Any]) -> list[str]:
    low, high = floor["view_vs_bare_min_max"]
    return [
        f"**Floor of a CPU view** ({floor['images']} images, one process, one thread, no loader, median of "
        f"{floor['repeats']}): read + decode {floor['bare_ms']:.3f} ms an image; read + decode + box + resample + "
        f"flip + copy into the batch {floor['view_ms']:.3f} ms: {floor['view_vs_bare']:.2f}x the bare decode "
        f"({low:.2f}-{high:.2f}): about the most (b) and (c) can reach against (d)",
        "",
    ]


def sample_paths(split_dir: Path, count: int) -> list[str]:
    paths = [p for p, _ in list_class_folder_files(split_dir, list_classes(split_dir))]
    return random.Random(0).sample(paths, min(count, len(paths)))


# ---------------------------------------------------------------------------------------------------- report


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    from PIL import features

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "pillow": PIL.__version__,
        "libjpeg_turbo": features.version("libjpeg_turbo"),
        "platform": platform.platform(),
    }


def command_line() -> str:
    exe = Path(sys.executable)
    try:
        exe = exe.relative_to(Path.cwd())
    except ValueError:
        pass
    return shlex.join([str(exe), *sys.argv])


def _fmt_ratio(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def results_table(summary: Summary, pipelines: Sequence[str], workers: Sequence[int]) -> list[str]:
    lines = [
        "| pipeline | workers | images/s (median) | images/s per core | vs (a) | vs (d) | min-max images/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for w in workers:
        for key in pipelines:
            rate, (low, high) = summary.median(key, w), summary.spread(key, w)
            lines.append(
                f"| {PIPELINES[key]} | {w} | {rate:.1f} | {rate / max(w, 1):.1f} | "
                f"{_fmt_ratio(summary.ratio(key, 'a', w))} | {_fmt_ratio(summary.ratio(key, 'd', w))} | "
                f"{low:.0f}-{high:.0f} |"
            )
    return lines


def ratio_table(summary: Summary, workers: Sequence[int]) -> list[str]:
    lines = [
        "| ratio | " + " | ".join(f"{w} worker(s)" for w in workers) + " |",
        "|---|" + "---:|" * len(workers),
    ]
    for name, (key, other) in RATIOS.items():
        cells = " | ".join(_fmt_ratio(summary.ratio(key, other, w)) for w in workers)
        lines.append(f"| `{name}` ({key})/({other}) | {cells} |")
    return lines


def goal_lines(
    summary: Summary, workers: Sequence[int], pixel_bound: Optional[float]
) -> tuple[list[str], Optional[bool]]:
    """Goals: (b) and (c) at least 2x (a) per core and at least 0.8x (d), and (c2) faster than (c), at every
    worker count (None: not checked, for want of the pipelines)."""
    lines: list[str] = []
    ok: Optional[bool] = None
    for key in ("b", "c"):
        for w in workers:
            vs_a, vs_d = summary.ratio(key, "a", w), summary.ratio(key, "d", w)
            if vs_a is None or vs_d is None:
                continue
            passed = vs_a >= 2.0 and vs_d >= 0.8
            ok = passed if ok is None else ok and passed
            lines.append(
                f"- {PIPELINES[key]}, {w} worker(s): {vs_a:.2f}x (a) (goal >= 2), {vs_d:.2f}x (d) "
                f"(goal >= 0.8): {'PASS' if passed else 'FAIL'}"
            )
    bound = "n/a" if pixel_bound is None else f"{pixel_bound:.2f}x"
    for w in workers:
        vs_c = summary.ratio("c2", "c", w)
        if vs_c is None:
            continue
        passed = vs_c > 1.0
        ok = passed if ok is None else ok and passed
        lines.append(
            f"- {PIPELINES['c2']}, {w} worker(s): {vs_c:.2f}x (c) (goal > 1; decoded pixels alone would "
            f"allow {bound}): {'PASS' if passed else 'FAIL'}"
        )
    return lines, ok


# ------------------------------------------------------------------------------------------------------ main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=2000, help="generated JPEGs (default 2000)")
    parser.add_argument("--classes", type=int, default=20, help="class folders (default 20)")
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="cache folder of the generated data (default $SPP_CLS_CACHE or ~/.cache/spp-cls, under bench-jpegs/)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated images (default 0)")
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=sorted({1, os.cpu_count() or 1}),
        help="DataLoader worker counts (default: 1 and all cores; 0: the main process)",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="images a batch (default 64)")
    parser.add_argument("--batches", type=int, default=25, help="timed batches per measurement (default 25)")
    parser.add_argument("--warmup", type=int, default=3, help="batches before timing starts (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per pipeline and worker count (median)")
    parser.add_argument(
        "--pipelines",
        nargs="+",
        default=None,
        choices=list(PIPELINES),
        help="which pipelines to run (default: a b c c2 d, and e with --device cuda)",
    )
    parser.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default="cpu",
        help="cuda: add (e), GPU decoding (default cpu: the CPU pipelines only)",
    )
    parser.add_argument(
        "--breakdown",
        type=int,
        default=200,
        metavar="N",
        help="time the per-sample stages of (b), (a), (c) and (c2) on N images (default 200; 0: off)",
    )
    parser.add_argument(
        "--pixels",
        type=int,
        default=400,
        metavar="N",
        help="decode N files as (c) and as (c2) to count their pixels (default 400; with c2)",
    )
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="save every raw number as JSON")
    return parser


def check_gpu_decoding() -> None:
    """(e) needs a CUDA device (and the GPU decoding path, see ``gpu_decode_loader``)."""
    if not torch.cuda.is_available():
        raise SystemExit(
            f"--device cuda: no CUDA device here (torch {torch.__version__}, CUDA build "
            f"{torch.version.cuda or 'none'}); (e) GPU decoding needs one. Leave --device out (cpu) to run "
            "(a)-(d)."
        )


def check_args(args: argparse.Namespace) -> None:
    """Fill in the default pipelines and refuse impossible settings before any data is made."""
    if args.pipelines is None:
        args.pipelines = [*CPU_PIPELINES, *(["e"] if args.device == "cuda" else [])]
    if args.device == "cuda":
        check_gpu_decoding()
    if min(args.workers) < 0 or min(args.batch_size, args.batches, args.warmup, args.repeats) < 1:
        raise SystemExit("--workers must be >= 0, --batch-size, --batches, --warmup and --repeats >= 1")
    if args.breakdown < 0 or args.pixels < 1:
        raise SystemExit("--breakdown must be >= 0 and --pixels >= 1")
    need = max(round_up(args.warmup, w) + round_up(args.batches, w) for w in args.workers) * args.batch_size
    if args.images < need:
        raise SystemExit(
            f"--images {args.images} is less than one epoch of warm-up + timed batches ({need} images "
            f"at batch size {args.batch_size}); raise --images or lower --batches/--warmup/--batch-size"
        )
    shards = {"c", "c2"} & set(args.pipelines)
    if shards and -(-args.images // SHARD_SIZE) < max(max(args.workers), 1):
        raise SystemExit(f"(c) and (c2) need at least one shard of {SHARD_SIZE} images per worker; raise --images")


def report_lines(
    args: argparse.Namespace,
    summary: Summary,
    stats: dict[str, float],
    root: Path,
    normalize_ms: float,
    pixels: Optional[dict[str, float]],
    kb: dict[str, float],
    goals: list[str],
    ok: Optional[bool],
) -> list[str]:
    machine = machine_info()
    lines = [
        "## Training-pipeline throughput",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores; Python {machine['python']}, torch {machine['torch']}, "
        f"torchvision {machine['torchvision']}, Pillow {machine['pillow']} (libjpeg-turbo {machine['libjpeg_turbo']})",
        f"Command: `{command_line()}`",
        f"Data: {stats['files']} generated JPEGs in {args.classes} class folders, {root}; {stats['mean_kb']:.0f} KB "
        f"mean ({stats['min_kb']:.0f}-{stats['max_kb']:.0f} KB); median {stats['median_width']:.0f}x"
        f"{stats['median_height']:.0f}, mean {stats['mean_width']:.0f}x{stats['mean_height']:.0f} "
        f"({stats['mean_megapixels']:.3f} MP); short side < 200: {100 * stats['share_short_under_200']:.1f} %, "
        f"long side > 1000: {100 * stats['share_long_over_1000']:.1f} % (up to {stats['max_long_side']}), "
        f"portrait {100 * stats['share_portrait']:.0f} %",
        *[f"Shards {PIPELINES[k]}: {v:.0f} KB a sample" for k, v in kb.items()],
        f"Each cell: median of {args.repeats} measurements of {args.batches} batches of {args.batch_size} after "
        f"{args.warmup} warm-up batches (both rounded up to a multiple of the worker count); per core = per "
        "worker; ratios: medians of the ratios within a repeat.",
        "",
        *results_table(summary, args.pipelines, args.workers),
        "",
        *ratio_table(summary, args.workers),
        "",
        f"Normalise on the device (here the CPU, 1 thread, main process): BatchNormalizer on a uint8 batch of "
        f"{args.batch_size} {SIZE}x{SIZE} views + lighting: {normalize_ms:.2f} ms "
        f"({normalize_ms / args.batch_size:.3f} ms an image)",
    ]
    if pixels is not None:
        lines.append(
            f"Pixel arithmetic ({pixels['images']} images): (c) decodes {pixels['shards_decoded_megapixels']:.3f} MP "
            f"an image, (c2) {pixels['resized_shards_decoded_megapixels']:.3f} MP: decoding alone could be "
            f"{pixels['bound_resized_vs_shards']:.2f}x faster"
        )
    return [
        *lines,
        "",
        "Goals ((b), (c) >= 2x (a) and >= 0.8x (d); (c2) > (c); at the same worker count):",
        *goals,
        f"All goals met: {'not checked' if ok is None else 'yes' if ok else 'NO'}",
        "",
    ]


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    check_args(args)
    wall_start = time.perf_counter()
    torch.set_num_threads(1)
    processes = os.cpu_count() or 1
    root = args.data or default_data_dir(args.images, args.classes, args.seed)
    split_dir = ensure_jpegs(root, args.images, args.classes, args.seed, processes)
    resize = {"c": None, "c2": RESIZE_SHORT}
    shard_dirs = {k: ensure_shards(root, processes, resize[k]) for k in ("c", "c2") if k in args.pipelines}
    stats = data_stats(split_dir)
    prepared_s = time.perf_counter() - wall_start

    factories = loader_factories(split_dir, shard_dirs, args.batch_size, args.device)
    results = run_measurements(factories, args.pipelines, args.workers, args.warmup, args.batches, args.repeats)
    summary = Summary(results)
    normalize_ms = time_normalizer(split_dir, args.batch_size, 10 * args.repeats)
    pixels = pixel_arithmetic(split_dir, shard_dirs["c2"], args.pixels) if "c2" in shard_dirs else None
    paths = sample_paths(split_dir, args.breakdown) if args.breakdown else []
    breakdowns: dict[str, tuple[dict[str, float], int]] = {}
    if paths:
        breakdowns["ours (b)"] = ours_breakdown(paths, args.batch_size), len(paths)
        breakdowns["baseline (a)"] = baseline_breakdown(paths, args.batch_size), len(paths)
        for key, shard_dir in shard_dirs.items():
            breakdowns[f"ours ({key}), shard reader"] = shard_breakdown(shard_dir, len(paths), args.batch_size)
    floor = view_floor(paths, args.batch_size, args.repeats) if paths else None
    wall_s = time.perf_counter() - wall_start

    kb = {k: shard_kb(d) for k, d in shard_dirs.items()}
    goals, ok = goal_lines(summary, args.workers, pixels["bound_resized_vs_shards"] if pixels else None)
    out = report_lines(args, summary, stats, root, normalize_ms, pixels, kb, goals, ok)
    for title, (seconds, images) in breakdowns.items():
        out += breakdown_table(f"Per-sample breakdown, {title}", seconds, images)
    if floor is not None:
        out += floor_lines(floor)
    out.append(f"Wall time: {wall_s:.0f} s (data preparation {prepared_s:.0f} s)")
    print("\n".join(out))

    if args.json is not None:
        ratio_workers = max(args.workers)
        keys = [(k, w) for w in args.workers for k in args.pipelines]
        raw = {
            "command": command_line(),
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "machine": machine_info(),
            "data": {"root": str(root), **stats, "shard_kb": kb},
            "ratios": summary.ratios(ratio_workers),
            "ratios_workers": ratio_workers,
            "ratios_by_workers": {str(w): summary.ratios(w) for w in args.workers},
            "images_per_s": {k: {str(w): summary.median(k, w) for w in args.workers} for k in args.pipelines},
            "per_core": {k: {str(w): summary.median(k, w) / max(w, 1) for w in args.workers} for k in args.pipelines},
            "median": [
                {
                    "pipeline": k,
                    "name": PIPELINES[k],
                    "workers": w,
                    "images_per_s": summary.median(k, w),
                    "per_core": summary.median(k, w) / max(w, 1),
                    "min_max": summary.spread(k, w),
                    "vs_a": summary.ratio(k, "a", w),
                    "vs_d": summary.ratio(k, "d", w),
                }
                for k, w in keys
            ],
            "measurements": [dict(asdict(m), rate=m.rate) for m in results],
            "pixel_arithmetic": pixels,
            "normalize_ms_per_batch": normalize_ms,
            "goals": goals,
            "goals_met": ok,
            "breakdown_ms_per_image": {t: {k: 1e3 * v / n for k, v in s.items()} for t, (s, n) in breakdowns.items()},
            "view_floor": floor,
            "wall_s": wall_s,
            "prepare_s": prepared_s,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(raw, indent=1))
        print(f"Raw numbers: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
