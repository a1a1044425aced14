"""An ImageNet-shaped file tree of empty files, for tests of listing and labelling at full scale.

Listing and label matching never decode, so empty files exercise them as real JPEGs would, and the
50,000-file validation folder of ILSVRC-2012 costs seconds to make rather than gigabytes.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import NamedTuple

NUM_CLASSES = 1000
VAL_IMAGES = 50_000


class Tree(NamedTuple):
    """Where the tree is and what its labels are (the truth the tests check against)."""

    root: Path
    labels_file: Path
    classes: list[str]
    val_truth: dict[str, str]  # flat validation file name -> wnid
    train_files: dict[str, list[str]]  # wnid -> file names (most class folders are empty)


def wnid(index: int) -> str:
    return f"n{1440764 + 17 * index:08d}"


def _touch(path: Path) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))


def make_tree(root: Path, num_classes: int = NUM_CLASSES, val_images: int = VAL_IMAGES, seed: int = 0) -> Tree:
    """``root/train/<wnid>/`` (a few empty files in every tenth folder), a flat ``root/val`` of
    ``ILSVRC2012_val_<n>.JPEG`` and ``root/LOC_val_solution.csv`` in Kaggle's format, rows shuffled as theirs
    are; each class gets ``val_images / num_classes`` validation images, in a shuffled assignment."""
    rng = random.Random(seed)
    classes = [wnid(i) for i in range(num_classes)]
    train_files: dict[str, list[str]] = {}
    for i, name in enumerate(classes):
        folder = root / "train" / name
        folder.mkdir(parents=True)
        files = [f"{name}_{k}.JPEG" for k in range(3)] if i % 10 == 0 else []
        for file in files:
            _touch(folder / file)
        train_files[name] = files
    val = root / "val"
    val.mkdir()
    assignment = [classes[n % num_classes] for n in range(val_images)]
    rng.shuffle(assignment)
    truth = {f"ILSVRC2012_val_{n + 1:08d}.JPEG": label for n, label in enumerate(assignment)}
    for name in truth:
        _touch(val / name)
    rows = [f"{Path(name).stem},{label} 12 34 156 178 {label} 1 2 30 40" for name, label in truth.items()]
    rng.shuffle(rows)
    labels_file = root / "LOC_val_solution.csv"
    labels_file.write_text("ImageId,PredictionString\n" + "\n".join(rows) + "\n")
    return Tree(root, labels_file, classes, truth, train_files)
