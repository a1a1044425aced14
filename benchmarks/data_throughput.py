"""Training-pipeline throughput, in images/s and images/s per CPU core, of torchvision's classic ImageNet
pipeline and of ours (class folders, shards, multi-size), side by side in one run.

Run from the repository root::

    python benchmarks/data_throughput.py [--images 2000] [--classes 20] [--batches 25] [--warmup 3]
        [--repeats 3] [--workers 1 2] [--pipelines a b c d e] [--data DIR] [--json PATH] [--breakdown 200]

Data: ``--images`` generated ImageNet-like JPEGs (mostly 500x375 / 500x333 landscape, some 375x500 portrait,
quality 90, smooth gradients and sinusoids + shapes + band-limited texture + mild noise: about 70-130 KB a
file, as ImageNet's) in ``--classes`` class folders, written once into ``--data`` (default
``$SPP_CLS_CACHE/bench-jpegs/...`` or ``~/.cache/spp-cls/bench-jpegs/...``) and reused while complete; the
shards of (c) are converted once next to them. Files come from the page cache after the first run: this
measures CPU cost, not storage.

Pipelines (batch size 64, every one with the same DataLoader settings: default prefetch_factor, no pinned
memory, no persistent workers, ``torch.set_num_threads(1)`` in the workers and in the main process):

(a) baseline: ``torchvision.datasets.ImageFolder`` + ``Resize(256), RandomCrop(224), RandomHorizontalFlip(),
    ToTensor(), Normalize(mean, std)`` (v1 transforms), PIL loader, default collate.
(b) ours, class folders: ``SkippingImageFolder`` + ``TrainView`` + ``ScheduledBatchSampler`` +
    ``collate_skipping``, exactly as training uses them (uint8 views; normalisation happens on the device:
    ``BatchNormalizer`` is timed separately here, on the CPU, in the main process).
(c) ours, shards: ``make_shards`` (100 files a shard) + ``ShardStream`` in a ``DataLoader(batch_size=None)``.
(d) bare cost: read the file and ``decode_rgb`` at the reduced size our decoder would use, nothing else
    (a dummy tensor per sample, so collation costs nothing): the floor the others are compared with.
(e) (b) at input size 180, the multi-size epochs' rate.

Each pipeline runs with every ``--workers`` count (default: 1 and all cores). A measurement starts a fresh
loader iterator, receives ``--warmup`` batches, then times ``--batches`` batches from the last warm-up batch
received to the last batch received (both rounded up to a multiple of the worker count, so that timing starts
and ends on a full round of workers). Measurements are interleaved (repeat > workers > pipeline) so machine
noise spreads over all pipelines, repeated ``--repeats`` times; the table quotes the median. Per core means
per loader worker (the main process only receives batches). Ratios compare medians at the same worker count.

``--breakdown N`` (default 200, 0: off) then times the per-sample stages of (b) and (a) in one process on N
images: where a sample's time goes. ``--json PATH`` saves every raw number.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import platform
import random
import shlex
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
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
from torchvision.io import ImageReadMode, decode_jpeg
from webdataset.filters import shuffle as wds_shuffle

from spp_cls.data.config import DataConfig
from spp_cls.data.decode import DEFAULT_MAX_PIXELS, _open_header, decode_rgb
from spp_cls.data.folder import SkippingImageFolder, collate_skipping, list_class_folder_files, list_classes
from spp_cls.data.make_shards import ShardConfig, convert
from spp_cls.data.normalize import BatchNormalizer
from spp_cls.data.sampling import SampleKey, ScheduledBatchSampler, sample_seed
from spp_cls.data.shard_manifest import load_manifest
from spp_cls.data.shards import ShardStream
from spp_cls.data.transforms import TrainView, lighting_offset, resample_square, square_box

BATCH_SIZE = 64
SHARD_SIZE = 100
DATA_VERSION = 1  # bump when the generated images change
MEAN, STD = DataConfig().mean, DataConfig().std
# (width, height) of the generated images and their weights: ImageNet's common sizes, mostly landscape
IMAGE_SIZES = ((500, 375), (500, 333), (375, 500), (500, 400), (333, 500))
IMAGE_SIZE_WEIGHTS = (0.5, 0.2, 0.15, 0.1, 0.05)
PIPELINES = {
    "a": "(a) torchvision ImageFolder + v1 transforms",
    "b": "(b) ours, class folders, 224",
    "c": "(c) ours, shards, 224",
    "d": "(d) bare: read + decode_rgb",
    "e": "(e) ours, class folders, 180",
}

log = logging.getLogger("data_throughput")


# --------------------------------------------------------------------------------------------- generated data


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
    colour blobs, shapes, band-limited texture under a smooth mask, mild noise. About 70-130 KB at quality 90."""
    rng = np.random.default_rng(seed)
    width, height = IMAGE_SIZES[int(rng.choice(len(IMAGE_SIZES), p=IMAGE_SIZE_WEIGHTS))]
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
        sizes = pool.map(_write_image, jobs, chunksize=16)
    stats = {"mean_kb": statistics.mean(sizes) / 1e3, "min_kb": min(sizes) / 1e3, "max_kb": max(sizes) / 1e3}
    marker.write_text(json.dumps({"spec": expected, "file_sizes": stats}, indent=1))
    log.info("generated in %.0f s; file sizes %s", time.perf_counter() - start, stats)
    return split_dir


def ensure_shards(root: Path, processes: int) -> Path:
    """Convert the training split to shards of ``SHARD_SIZE`` files once (make_shards resumes/reuses)."""
    dst = root / f"shards-{SHARD_SIZE}"
    if not (dst / "manifest.json").is_file():
        log.info("converting %s to shards of %d in %s (once) ...", root / "train", SHARD_SIZE, dst)
        convert(ShardConfig(source=str(root), shard_size=SHARD_SIZE, splits=("train",)), dst, workers=processes)
    return dst


def file_size_stats(split_dir: Path) -> dict[str, float]:
    sizes = [p.stat().st_size for p in split_dir.glob("*/*.JPEG")]
    return {
        "files": len(sizes),
        "mean_kb": statistics.mean(sizes) / 1e3,
        "min_kb": min(sizes) / 1e3,
        "max_kb": max(sizes) / 1e3,
    }


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


def baseline_loader(split_dir: Path, workers: int, repeat: int) -> DataLoader:
    """(a) torchvision's classic ImageNet training pipeline."""
    dataset = datasets.ImageFolder(str(split_dir), baseline_transform())
    return make_loader(
        dataset,
        workers,
        batch_size=BATCH_SIZE,
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(repeat),
    )


def folder_dataset(split_dir: Path) -> SkippingImageFolder:
    samples = list_class_folder_files(split_dir, list_classes(split_dir))
    return SkippingImageFolder(split_dir, TrainView(DataConfig()), samples=samples)


def folder_loader(split_dir: Path, workers: int, repeat: int, size: int = 224) -> DataLoader:
    """(b)/(e) our class-folder training loader, as training builds it."""
    dataset = folder_dataset(split_dir)
    sampler = ScheduledBatchSampler(dataset, BATCH_SIZE, [size], "alternate", seed=0)
    sampler.set_epoch(repeat)
    return make_loader(dataset, workers, batch_sampler=sampler, collate_fn=collate_skipping)


def shard_loader(shard_dir: Path, workers: int, repeat: int) -> DataLoader:
    """(c) our shard reader."""
    stream = ShardStream(
        load_manifest(str(shard_dir)).split("train"),
        TrainView(DataConfig()),
        batch_size=BATCH_SIZE,
        train=True,
        sizes=[224],
        schedule="alternate",
        seed=0,
        eval_size=224,
        num_workers=workers,
    )
    stream.set_epoch(repeat)
    return make_loader(stream, workers, batch_size=None)


class DecodeOnly(Dataset):
    """(d) read the file and decode it at the reduced size our decoder would use; nothing else."""

    def __init__(self, split_dir: Path, size: int = 224) -> None:
        self.paths = [path for path, _ in list_class_folder_files(split_dir, list_classes(split_dir))]
        self.min_short_side = DataConfig().decode_short_side(size)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        with open(self.paths[index], "rb") as f:
            image = decode_rgb(f.read(), min_short_side=self.min_short_side)
        return torch.tensor(image.shape[1])  # a dummy: collating it costs nothing


def decode_only_loader(split_dir: Path, workers: int, repeat: int) -> DataLoader:
    return make_loader(
        DecodeOnly(split_dir),
        workers,
        batch_size=BATCH_SIZE,
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(repeat),
    )


LoaderFactory = Callable[[int, int], DataLoader]


def loader_factories(split_dir: Path, shard_dir: Optional[Path]) -> dict[str, LoaderFactory]:
    factories: dict[str, LoaderFactory] = {
        "a": lambda w, r: baseline_loader(split_dir, w, r),
        "b": lambda w, r: folder_loader(split_dir, w, r, 224),
        "d": lambda w, r: decode_only_loader(split_dir, w, r),
        "e": lambda w, r: folder_loader(split_dir, w, r, 180),
    }
    if shard_dir is not None:
        factories["c"] = lambda w, r: shard_loader(shard_dir, w, r)
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
    """Every (repeat, workers, pipeline), interleaved so that machine noise hits all pipelines alike."""
    results = []
    for repeat in range(repeats):
        for w in workers:
            steps = round_up(warmup, w), round_up(batches, w)
            for key in pipelines:
                images, seconds = measure(factories[key](w, repeat), *steps)
                m = Measurement(key, w, repeat, steps[0], steps[1], images, seconds)
                log.info(
                    "repeat %d/%d, %d worker(s), %s: %.1f images/s", repeat + 1, repeats, w, PIPELINES[key], m.rate
                )
                results.append(m)
    return results


def median_rates(results: Sequence[Measurement]) -> dict[tuple[str, int], list[float]]:
    rates: dict[tuple[str, int], list[float]] = {}
    for m in results:
        rates.setdefault((m.pipeline, m.workers), []).append(m.rate)
    return rates


def time_normalizer(split_dir: Path, size: int, calls: int) -> float:
    """Median ms of ``BatchNormalizer`` on one uint8 batch of 64 views at ``size``, on the CPU, one thread."""
    dataset = folder_dataset(split_dir)
    keys = [SampleKey(i, size, sample_seed(0, 0, i)) for i in range(BATCH_SIZE)]
    batch = collate_skipping([dataset[k] for k in keys])
    normalizer = BatchNormalizer(DataConfig())
    normalizer(batch["image"], batch["lighting"])
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        normalizer(batch["image"], batch["lighting"])
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


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


def _decode_jpeg_tensor(data: bytes) -> torch.Tensor:
    return decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)


def _time_batches(timer: StageTimer, stage: str, samples: list[Any], collate: Callable[[list[Any]], Any]) -> None:
    """Time ``collate`` on batches of ``samples``; dict samples are copied first (untimed), as
    ``collate_skipping`` pops their ``image``: the caller's samples stay whole for the next stage."""
    for start in range(0, len(samples), BATCH_SIZE):
        batch = [dict(s) if isinstance(s, dict) else s for s in samples[start : start + BATCH_SIZE]]
        timer.time(stage, collate, batch)


def ours_breakdown(paths: Sequence[str], size: int) -> dict[str, float]:
    """Seconds per stage of our per-sample path (``SkippingImageFolder.__getitem__`` + ``TrainView``), taken
    apart, and the whole ``__getitem__`` on the same images for reference."""
    settings, timer, samples = DataConfig(), StageTimer(), []
    min_short = settings.decode_short_side(size)
    for index, path in enumerate(paths):
        data = timer.time("read file", _read, path)
        rng = timer.time("per-sample seed + Random()", lambda: random.Random(sample_seed(0, 0, index)))  # noqa: B023 (called at once)
        header = timer.time("decode_rgb: PIL header (_open_header)", _open_header, data, DEFAULT_MAX_PIXELS)
        header.close()
        image = timer.time("decode_rgb: decode_jpeg (bytearray copy + libjpeg-turbo)", _decode_jpeg_tensor, data)
        timer.time("decode_rgb (whole, for reference: not summed)", decode_rgb, data, min_short)
        box = timer.time("square_box", square_box, image.shape[1], image.shape[2], settings, "random", rng)
        view = timer.time("resample_square", resample_square, image, box, size, settings.interpolation)
        view = timer.time("flip", lambda v: v.flip(-1) if rng.random() < 0.5 else v, view)  # noqa: B023 (called at once)
        lighting = timer.time("lighting_offset", lighting_offset, settings, rng)
        samples.append({"image": view, "lighting": lighting, "target": 0})
    _time_batches(timer, "collate_skipping (per image)", samples, collate_skipping)
    _time_batches(
        timer,
        "alternative: stack into a channels_last batch (per image, not summed)",
        [sample["image"] for sample in samples],
        stack_channels_last,
    )
    dataset = folder_dataset(Path(paths[0]).parent.parent)
    index_of = {p: i for i, (p, _) in enumerate(dataset.samples)}
    keys = [SampleKey(index_of[p], size, sample_seed(0, 0, i)) for i, p in enumerate(paths)]
    for key in keys:
        timer.time("SkippingImageFolder.__getitem__ (whole, for reference: not summed)", dataset.__getitem__, key)
    return timer.seconds


def stack_channels_last(images: list[torch.Tensor]) -> torch.Tensor:
    """The views are channels-last in memory (decode_jpeg and interpolate's uint8 fast path are): stacking
    them into a channels_last batch is a plain copy, into a contiguous NCHW batch a transposing one."""
    first = images[0]
    out = torch.empty((len(images), *first.shape), dtype=first.dtype, memory_format=torch.channels_last)
    return torch.stack(images, out=out)


def shard_breakdown(shard_dir: Path, count: int, size: int) -> dict[str, float]:
    """Seconds per stage of the shard reader's own work: tar reading, shuffle buffer, decode + view
    (``ShardStream._decode``, the same work as (b)'s ``__getitem__``), collation; and a whole epoch of the
    stream in this process for reference."""
    stream = ShardStream(
        load_manifest(str(shard_dir)).split("train"),
        TrainView(DataConfig()),
        batch_size=BATCH_SIZE,
        train=True,
        sizes=[size],
        schedule="alternate",
        seed=0,
        eval_size=size,
        num_workers=0,
    )
    timer, errors, raw = StageTimer(), [], []
    reader = stream._read(list(range(len(stream.split.shards))), errors)
    for _ in range(count):
        sample = timer.time("tar read + group_by_keys", next, reader, None)
        if sample is None:
            break
        raw.append(sample)
    shuffled = wds_shuffle(stream.shuffle_buffer, min(stream.shuffle_buffer, 100), rng=random.Random(0))(iter(raw))
    raw = timer.time("shuffle buffer", list, shuffled)
    decoded = [timer.time("ShardStream._decode (decode + view)", stream._decode, r, size, 0) for r in raw]
    _time_batches(timer, "ShardStream._collate (per image)", decoded, lambda b: stream._collate(b, []))
    # a whole epoch: the shuffle buffer reads ahead early in an epoch, so a few batches would overstate it
    start, images = time.perf_counter(), sum(count_images(batch) for batch in stream)
    timer.seconds["whole ShardStream, one epoch in this process (for reference: not summed)"] = (
        (time.perf_counter() - start) * len(raw) / max(images, 1)
    )
    return timer.seconds


def baseline_breakdown(paths: Sequence[str]) -> dict[str, float]:
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
    _time_batches(timer, "default_collate (per image)", samples, default_collate)
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


@dataclass
class Summary:
    median: dict[tuple[str, int], float] = field(default_factory=dict)
    spread: dict[tuple[str, int], tuple[float, float]] = field(default_factory=dict)

    @classmethod
    def of(cls, results: Sequence[Measurement]) -> "Summary":
        summary = cls()
        for key, rates in median_rates(results).items():
            summary.median[key] = statistics.median(rates)
            summary.spread[key] = (min(rates), max(rates))
        return summary

    def ratio(self, key: str, other: str, workers: int) -> Optional[float]:
        if (key, workers) not in self.median or (other, workers) not in self.median:
            return None
        return self.median[(key, workers)] / self.median[(other, workers)]


def _fmt_ratio(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def results_table(summary: Summary, pipelines: Sequence[str], workers: Sequence[int]) -> list[str]:
    lines = [
        "| pipeline | workers | images/s (median) | images/s per core | vs (a) | vs (d) | min-max images/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for w in workers:
        for key in pipelines:
            rate, (low, high) = summary.median[(key, w)], summary.spread[(key, w)]
            lines.append(
                f"| {PIPELINES[key]} | {w} | {rate:.1f} | {rate / max(w, 1):.1f} | "
                f"{_fmt_ratio(summary.ratio(key, 'a', w))} | {_fmt_ratio(summary.ratio(key, 'd', w))} | "
                f"{low:.0f}-{high:.0f} |"
            )
    return lines


def goal_lines(summary: Summary, workers: Sequence[int]) -> tuple[list[str], Optional[bool]]:
    """Goals: (b) and (c) at least 2x (a) per core, and at least 0.8x (d), at every worker count (None: not
    checked, for want of (a), (d) or both of (b) and (c))."""
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
        help="DataLoader worker counts (default: 1 and all cores)",
    )
    parser.add_argument("--batches", type=int, default=25, help="timed batches per measurement (default 25)")
    parser.add_argument("--warmup", type=int, default=3, help="batches before timing starts (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per pipeline and worker count (median)")
    parser.add_argument(
        "--pipelines",
        nargs="+",
        default=list(PIPELINES),
        choices=list(PIPELINES),
        help="which pipelines to run (default all: a b c d e)",
    )
    parser.add_argument(
        "--breakdown",
        type=int,
        default=200,
        metavar="N",
        help="time our and the baseline's per-sample stages on N images (default 200; 0: off)",
    )
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="save raw numbers as JSON")
    return parser


def check_args(args: argparse.Namespace) -> None:
    if min(args.workers) < 0 or args.batches < 1 or args.warmup < 1 or args.repeats < 1:
        raise SystemExit("--workers must be >= 0, --batches, --warmup and --repeats >= 1")
    need = max(round_up(args.warmup, w) + round_up(args.batches, w) for w in args.workers) * BATCH_SIZE
    if args.images < need:
        raise SystemExit(
            f"--images {args.images} is less than one epoch of warm-up + timed batches ({need} images "
            f"at batch size {BATCH_SIZE}); raise --images or lower --batches/--warmup"
        )
    if "c" in args.pipelines and -(-args.images // SHARD_SIZE) < max(max(args.workers), 1):
        raise SystemExit(f"(c) needs at least one shard of {SHARD_SIZE} images per worker; raise --images")


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    check_args(args)
    wall_start = time.perf_counter()
    torch.set_num_threads(1)
    processes = os.cpu_count() or 1
    root = args.data or default_data_dir(args.images, args.classes, args.seed)
    split_dir = ensure_jpegs(root, args.images, args.classes, args.seed, processes)
    shard_dir = ensure_shards(root, processes) if "c" in args.pipelines else None
    prepared_s = time.perf_counter() - wall_start

    results = run_measurements(
        loader_factories(split_dir, shard_dir), args.pipelines, args.workers, args.warmup, args.batches, args.repeats
    )
    summary = Summary.of(results)
    normalize_ms = {size: time_normalizer(split_dir, size, 10 * args.repeats) for size in (224, 180)}
    paths = sample_paths(split_dir, args.breakdown) if args.breakdown else []
    breakdowns: dict[str, dict[str, float]] = {}
    if paths:
        breakdowns["ours (b), 224"] = ours_breakdown(paths, 224)
        breakdowns["baseline (a)"] = baseline_breakdown(paths)
        if shard_dir is not None:
            breakdowns["ours (c), shard reader, 224"] = shard_breakdown(shard_dir, len(paths), 224)
    wall_s = time.perf_counter() - wall_start

    machine, sizes = machine_info(), file_size_stats(split_dir)
    goals, ok = goal_lines(summary, args.workers)
    out = [
        "## Training-pipeline throughput",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores; Python {machine['python']}, torch {machine['torch']}, "
        f"torchvision {machine['torchvision']}, Pillow {machine['pillow']} (libjpeg-turbo {machine['libjpeg_turbo']})",
        f"Command: `{command_line()}`",
        f"Data: {sizes['files']} generated JPEGs in {args.classes} class folders, {sizes['mean_kb']:.0f} KB mean "
        f"({sizes['min_kb']:.0f}-{sizes['max_kb']:.0f} KB), {root}",
        f"Each cell: median of {args.repeats} measurements of {args.batches} batches of {BATCH_SIZE} after "
        f"{args.warmup} warm-up batches (both rounded up to a multiple of the worker count); per core = per worker.",
        "",
        *results_table(summary, args.pipelines, args.workers),
        "",
        "| normalise on device (CPU here, 1 thread, main process): BatchNormalizer | ms / batch of 64 | ms / image |",
        "|---|---:|---:|",
        *[
            f"| uint8 {s}x{s} + lighting -> normalised float32 | {ms:.2f} | {ms / BATCH_SIZE:.3f} |"
            for s, ms in normalize_ms.items()
        ],
        "",
        "Goals ((b), (c) >= 2x (a) and >= 0.8x (d) at the same worker count):",
        *goals,
        f"All goals met: {'not checked' if ok is None else 'yes' if ok else 'NO'}",
        "",
    ]
    for title, seconds in breakdowns.items():
        out += breakdown_table(f"Per-sample breakdown, {title}", seconds, len(paths))
    out.append(f"Wall time: {wall_s:.0f} s (data preparation {prepared_s:.0f} s)")
    print("\n".join(out))

    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "command": command_line(),
                    "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                    "machine": machine,
                    "data": {"root": str(root), **sizes},
                    "measurements": [dict(asdict(m), rate=m.rate) for m in results],
                    "median": [
                        {
                            "pipeline": k,
                            "workers": w,
                            "images_per_s": r,
                            "per_core": r / max(w, 1),
                            "vs_a": summary.ratio(k, "a", w),
                            "vs_d": summary.ratio(k, "d", w),
                        }
                        for (k, w), r in summary.median.items()
                    ],
                    "normalize_ms_per_batch": normalize_ms,
                    "goals_met": ok,
                    "breakdown_ms_per_image": {
                        t: {k: 1e3 * v / len(paths) for k, v in s.items()} for t, s in breakdowns.items()
                    },
                    "wall_s": wall_s,
                    "prepare_s": prepared_s,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
