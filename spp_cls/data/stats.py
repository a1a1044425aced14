"""Normalisation and colour statistics of a training split: ``python -m spp_cls.data.stats ROOT OUT.npz``.

The paper (§3, appendix) subtracts a per-pixel *mean image* of the 224x224 training views, and AlexNet's
colour lighting needs the eigen-decomposition of the 3x3 RGB pixel covariance. The published ImageNet
figures are the defaults (``transforms.py``); this command recomputes them for any class-folder data set.

Every image contributes its *center view* (short side resized to ``resize_size``, center ``crop_size``
square: the evaluation pipeline, so the statistics describe what the network sees, not the raw files).
Sums are accumulated in float64 (per-pixel sum, per-channel sum, 3x3 sum of pixel outer products), so
memory stays constant however many images are read. Values are in [0, 1] scale (uint8 / 255).

Output: an ``.npz`` (arrays only, no pickles, written atomically) with ``mean_image`` (3, crop, crop),
``mean``/``std`` (3,), ``eigval`` (3,) and ``eigvec`` (3, 3), ``count``, ``skipped``, ``resize_size``
and ``crop_size``; and the matching ``data.*`` overrides on stdout, ready to paste.

``eigvec`` follows ``DataConfig.eigvec``: column j is the eigenvector of ``eigval[j]`` (the offset is
``offset_i = sum_j eigvec[i][j] * alpha_j * eigval_j``), eigenvalues in decreasing order.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import DataLoader

from spp_cls.data.config import DataConfig
from spp_cls.data.folder import SkippingImageFolder, collate_skipping, list_class_folder_files, list_classes
from spp_cls.data.transforms import CenterView

log = logging.getLogger(__name__)

BATCH_SIZE = 32
LOGGED_SKIPS = 5


def choose_samples(samples: list[tuple[str, int]], max_images: Optional[int], seed: int) -> list[tuple[str, int]]:
    """All samples, or a seeded random subset of ``max_images`` of them (kept in listing order, so reads
    stay roughly sequential on disk); the same seed gives the same subset."""
    if max_images is None or max_images >= len(samples):
        return samples
    if max_images < 1:
        raise ValueError(f"max_images must be >= 1; got {max_images}")
    chosen = sorted(random.Random(seed).sample(range(len(samples)), max_images))
    return [samples[i] for i in chosen]


class _Accumulator:
    """Float64 running sums of center views, constant memory; ``finish`` turns them into the statistics."""

    def __init__(self, size: int) -> None:
        self.images = 0
        self.pixel_sum = torch.zeros(3, size, size, dtype=torch.float64)  # per-pixel sum -> mean image
        self.channel_sum = torch.zeros(3, dtype=torch.float64)
        self.outer_sum = torch.zeros(3, 3, dtype=torch.float64)  # sum of x x^T over pixels -> covariance

    def add(self, images: torch.Tensor) -> None:
        x = images.to(torch.float64).div_(255.0)  # (B, 3, S, S)
        self.images += x.shape[0]
        self.pixel_sum += x.sum(0)
        flat = x.transpose(0, 1).reshape(3, -1)  # (3, B*S*S)
        self.channel_sum += flat.sum(1)
        self.outer_sum += flat @ flat.T

    def finish(self) -> dict[str, np.ndarray]:
        if self.images == 0:
            raise ValueError("no usable images: every image was skipped")
        pixels = self.images * self.pixel_sum.shape[1] * self.pixel_sum.shape[2]
        mean = (self.channel_sum / pixels).numpy()
        cov = (self.outer_sum / pixels).numpy() - np.outer(mean, mean)
        cov = (cov + cov.T) / 2
        eigval, eigvec = np.linalg.eigh(cov)  # ascending; column j is the j-th eigenvector
        order = np.argsort(eigval)[::-1]
        eigval, eigvec = np.clip(eigval[order], 0.0, None), eigvec[:, order]
        # An eigenvector's sign is arbitrary (the lighting draws symmetric alphas); fix it for reproducible
        # output: the component of largest magnitude is positive.
        signs = np.sign(eigvec[np.abs(eigvec).argmax(0), np.arange(3)])
        eigvec = eigvec * np.where(signs == 0, 1.0, signs)
        return {
            "mean_image": (self.pixel_sum / self.images).numpy().astype(np.float32),
            "mean": mean.astype(np.float32),
            "std": np.sqrt(np.clip(np.diag(cov), 0.0, None)).astype(np.float32),
            "eigval": eigval.astype(np.float32),
            "eigvec": eigvec.astype(np.float32),
        }


def compute_stats(
    split_dir: Path,
    settings: DataConfig,
    max_images: Optional[int] = None,
    seed: int = 0,
    workers: int = 0,
    batch_size: int = BATCH_SIZE,
) -> dict[str, np.ndarray]:
    """Statistics of the center views of (up to ``max_images``, a seeded random subset of) the images of a
    class-folder split. Unreadable files are skipped and counted (``skipped``), never fatal."""
    split_dir = Path(split_dir)
    classes = list_classes(split_dir)
    samples = list_class_folder_files(split_dir, classes)
    if not samples:
        raise ValueError(f"{split_dir} has class folders but no image files")
    samples = choose_samples(samples, max_images, seed)
    size = settings.crop_size
    dataset = SkippingImageFolder(
        split_dir, CenterView(settings), size=size, classes=classes, samples=samples, max_pixels=settings.max_pixels
    )
    loader: DataLoader[Any] = DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate_skipping
    )
    total = len(samples)
    log.info(
        "statistics of %d images of %s (center %d view of short side %d, %d workers)",
        total,
        split_dir,
        size,
        settings.resize_size,
        workers,
    )
    acc = _Accumulator(size)
    skipped_paths: list[str] = []
    seen, next_report = 0, 1
    for batch in loader:
        skipped_paths.extend(batch["skipped_paths"])
        if batch["image"] is not None:
            acc.add(batch["image"])
        seen += len(batch["skipped_paths"]) + (0 if batch["image"] is None else batch["image"].shape[0])
        if seen * 10 >= next_report * total:  # a progress line about every 10%
            log.info("%d/%d images (%d%%), %d skipped", seen, total, 100 * seen // total, len(skipped_paths))
            next_report = seen * 10 // total + 1
    if skipped_paths:
        log.warning("skipped %d unreadable files, e.g. %s", len(skipped_paths), skipped_paths[:LOGGED_SKIPS])
    stats = acc.finish()
    stats.update(
        count=np.array(acc.images, dtype=np.int64),
        skipped=np.array(len(skipped_paths), dtype=np.int64),
        resize_size=np.array(settings.resize_size, dtype=np.int64),
        crop_size=np.array(size, dtype=np.int64),
    )
    return stats


def save_stats(path: Union[str, Path], stats: dict[str, np.ndarray]) -> Path:
    """Write ``stats`` as an ``.npz`` atomically (temporary file in the same folder, then rename), so a
    crash never leaves a half-written file where training will look for the mean image."""
    path = Path(path).expanduser()
    arrays = {key: np.asarray(value) for key, value in stats.items()}
    for key, value in arrays.items():
        if value.dtype == object:
            raise TypeError(f"stats[{key!r}] is not a numeric array (would need a pickle)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:  # a file object: np.savez adds no ".npz" suffix
            np.savez(f, **arrays)  # type: ignore[arg-type]  # numpy's stub matches **kwargs to allow_pickle
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def _fmt(values: np.ndarray) -> str:
    """A Hydra override list without spaces: ``[0.485,0.456,0.406]`` (nested for 2-D)."""
    if values.ndim == 1:
        return "[" + ",".join(f"{float(v):.6g}" for v in values) + "]"
    return "[" + ",".join(_fmt(row) for row in values) + "]"


def config_lines(stats: dict[str, np.ndarray], out: Path) -> list[str]:
    """The ``data.*`` overrides that use these statistics, one per line."""
    return [
        f"data.mean={_fmt(stats['mean'])}",
        f"data.std={_fmt(stats['std'])}",
        f"data.eigval={_fmt(stats['eigval'])}",
        f"data.eigvec={_fmt(stats['eigvec'])}",
        f"data.normalization=mean_image data.mean_image={out}",
    ]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m spp_cls.data.stats",
        description="Per-pixel mean image, per-channel mean/std and RGB covariance eigenvalues/vectors of the "
        "center views of a class-folder split (ROOT/<split>/<class>/<image>).",
    )
    parser.add_argument("root", type=Path, help="data root holding the split folder")
    parser.add_argument("out", type=Path, help="output .npz file (load the mean image with data.mean_image=OUT)")
    parser.add_argument("--split", default="train", help="split folder under ROOT (default: train)")
    parser.add_argument("--resize-size", type=int, default=256, help="short side before the center crop (256)")
    parser.add_argument("--crop-size", type=int, default=224, help="center view size = mean image size (224)")
    parser.add_argument("--max-images", type=int, default=None, help="use a random subset of N images (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --max-images subset (0)")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="DataLoader workers")
    args = parser.parse_args(argv)
    if args.max_images is not None and args.max_images < 1:
        parser.error(f"--max-images must be >= 1; got {args.max_images}")
    if args.workers < 0:
        parser.error(f"--workers must be >= 0; got {args.workers}")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Compute, save and print the statistics; 2 for a missing root/split or unusable settings or data."""
    args = parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    split_dir = args.root.expanduser() / args.split
    try:
        if not args.root.expanduser().is_dir():
            raise FileNotFoundError(f"data root {args.root} does not exist")
        settings = DataConfig(resize_size=args.resize_size, crop_size=args.crop_size)
        stats = compute_stats(split_dir, settings, args.max_images, args.seed, args.workers)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = save_stats(args.out, stats)
    log.info("wrote %s: %d images, %d skipped", out, int(stats["count"]), int(stats["skipped"]))
    print("\n".join(config_lines(stats, out.resolve())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
