"""IMAGE_OR_DIR arguments -> batches of views: files as given, directories as the image files under them (by
extension, sorted), decoded by content with the data layer's decoder and skipped with the reason when unusable.

The data layer's ``SkippingImageFolder`` does the reading (one decoder and one skip rule for training, evaluation
and prediction); the sample's target is its position in the file list, so a batch's scores map back to paths.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator, NamedTuple, Optional, Union

from torch.utils.data import DataLoader

from spp_cls.data.config import DataConfig
from spp_cls.data.folder import Skipped, SkippingImageFolder, collate_images, is_image_name
from spp_cls.data.transforms import View


def image_files(arguments: list[str], passed_over: Optional[list[str]] = None) -> list[str]:
    """The files to predict: each file argument (whatever its name: decoding is by content), and the files with
    an image extension under each directory argument, in sorted order; the other files under those directories
    are added to ``passed_over`` (for the caller to report). A path that does not exist stays in the list:
    reading it fails, and it is reported and skipped like any unreadable image."""
    files: list[str] = []
    for argument in arguments:
        path = Path(argument)
        files += _files_under(path, passed_over) if path.is_dir() else [str(path)]
    return files


def _files_under(directory: Path, passed_over: Optional[list[str]] = None) -> list[str]:
    """The image files under ``directory``, sorted. Symlinked folders are followed, as the training listing
    follows symlinked class folders (a test set assembled from links is not silently empty), but a folder is
    read once: a link to a folder already read (an ancestor, which would loop, or a sibling) is passed over.
    Folders are visited in sorted order, so which of two names of one folder is kept does not vary by run."""
    found: list[str] = []
    visited: set[str] = set()
    for root, folders, names in os.walk(directory, followlinks=True):
        real = os.path.realpath(root)
        if real in visited:
            folders.clear()
            continue
        visited.add(real)
        folders.sort()
        found += [os.path.join(root, name) for name in names if is_image_name(name)]
        if passed_over is not None:
            passed_over += sorted(os.path.join(root, name) for name in names if not is_image_name(name))
    return sorted(found)


class Batch(NamedTuple):
    """The usable images of a batch (uint8 views, or None), their positions in the file list, and the skipped
    files with their reasons."""

    images: Any
    positions: list[int]
    skipped: list[Skipped]


def collate(samples: list[Union[dict[str, Any], Skipped]]) -> Batch:
    """A batch as ``collate_images`` stacks it (same-size views) or lists it (whole images of several sizes)."""
    kept = [s for s in samples if isinstance(s, dict)]
    skipped = [s for s in samples if isinstance(s, Skipped)]
    images = collate_images([s["image"] for s in kept]) if kept else None
    return Batch(images, [int(s["target"]) for s in kept], skipped)


def batches(files: list[str], view: View, settings: DataConfig, batch_size: int, workers: int) -> Iterator[Batch]:
    """The files' views in batches of ``batch_size``, decoded and resampled by ``workers`` loader processes."""
    dataset = SkippingImageFolder(
        ".",
        view=view,
        size=settings.crop_size,
        classes=["image"],
        samples=[(path, i) for i, path in enumerate(files)],
        max_pixels=settings.max_pixels,
    )
    yield from DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate)
