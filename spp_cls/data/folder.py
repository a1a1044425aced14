"""ImageNet-style class-folder data (``root/<split>/<class>/<image>``) that skips and counts bad files.

A file that cannot be decoded is logged with its path and dropped from its batch; the collate function
reports how many were dropped so the training and evaluation layers can log and report the count.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import default_collate
from torchvision.datasets import ImageFolder

log = logging.getLogger(__name__)


def list_classes(split_dir: Path) -> list[str]:
    """Sorted class-folder names of a split, or a clear error if the split is missing or flat."""
    if not split_dir.is_dir():
        raise FileNotFoundError(f"split folder {split_dir} does not exist")
    classes = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise FileNotFoundError(
            f"{split_dir} has no class folders; expected {split_dir}/<class>/<image> "
            f"(an ImageNet val split must be sorted into class folders first)"
        )
    return classes


def check_layout(root: Path, splits: tuple[str, ...], num_classes: int) -> list[str]:
    """Check that every split has the same ``num_classes`` class folders; return the class names."""
    reference: Optional[list[str]] = None
    for split in splits:
        classes = list_classes(root / split)
        if len(classes) != num_classes:
            raise ValueError(f"{root / split} has {len(classes)} class folders but data.num_classes={num_classes}")
        if reference is not None and classes != reference:
            differ = sorted(set(classes) ^ set(reference))[:5]
            raise ValueError(f"class folders differ between splits {splits}, e.g. {differ}")
        reference = classes
    assert reference is not None
    return reference


class SkippingImageFolder(ImageFolder):
    """``ImageFolder`` whose unreadable images become ``None`` (dropped by ``collate_skipping``)."""

    def __init__(self, root: str | Path, transform: Optional[Callable] = None) -> None:
        super().__init__(str(root), transform=transform)

    def __getitem__(self, index: int) -> Optional[tuple[Any, int]]:
        path, target = self.samples[index]
        try:
            with Image.open(path) as img:
                image = img.convert("RGB")
        except (OSError, UnidentifiedImageError, ValueError) as err:
            log.warning("skipping unreadable image %s: %s", path, err)
            return None
        if self.transform is not None:
            image = self.transform(image)
        return image, target


def collate_skipping(batch: list[Optional[tuple[Any, int]]]) -> dict[str, Any]:
    """Collate the readable samples; ``skipped`` counts the dropped ones (``image`` is None if all were)."""
    kept = [sample for sample in batch if sample is not None]
    skipped = torch.tensor(len(batch) - len(kept))
    if not kept:
        return {"image": None, "target": None, "skipped": skipped}
    images, targets = default_collate(kept)
    return {"image": images, "target": targets, "skipped": skipped}
