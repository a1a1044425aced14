"""Flat validation folders (``root/val/<image>``) labelled by a file, in the forms people have:

- ``LOC_val_solution.csv`` (Kaggle): header ``ImageId,PredictionString``; the first token of the
  prediction string is the wnid.
- ``<image name> <label>`` per line (e.g. Caffe's ``val.txt``), the label a class name or an integer.
- one label per line (e.g. the devkit's ``ILSVRC2012_validation_ground_truth.txt``), for the images in
  sorted file-name order.

Integer labels are ambiguous (the devkit counts from 1 in its own synset order, Caffe's ``val.txt`` from 0
in sorted-wnid order), so they need ``data.val_label_map``: ``sorted`` (0-based index into the sorted
training classes) or a file that lists the wnids in id order (``map_clsloc.txt``: ``wnid id name`` lines;
or one wnid per line, ids counted from 1). A wrong guess would silently give ~100% error, so there is none.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Optional, Sequence

from spp_cls.data.folder import Sample, compare_classes, list_flat_names


def _read_label_map(spec: Optional[str], classes: list[str]) -> dict[int, str]:
    if spec is None:
        raise ValueError(
            "the validation label file has integer labels: set data.val_label_map=sorted (0-based index into the "
            "sorted training classes, as Caffe's val.txt) or data.val_label_map=PATH (the devkit's map_clsloc.txt, "
            "or a file with one wnid per line, ids counted from 1)"
        )
    if spec == "sorted":
        return dict(enumerate(classes))
    mapping: dict[int, str] = {}
    lines = [line.split() for line in Path(spec).expanduser().read_text().splitlines() if line.strip()]
    for number, parts in enumerate(lines, start=1):
        if len(parts) >= 2 and parts[1].isdigit():
            mapping[int(parts[1])] = parts[0]
        else:
            mapping[number] = parts[0]
    return mapping


def _resolve(label: str, mapping: Optional[dict[int, str]], classes: list[str], label_map: Optional[str]) -> str:
    if not label.lstrip("-").isdigit():
        return label
    if mapping is None:
        mapping = _read_label_map(label_map, classes)
    if int(label) not in mapping:
        raise ValueError(f"validation label {label} is not an id of data.val_label_map={label_map}")
    return mapping[int(label)]


def read_val_labels(
    path: Path, image_names: Sequence[str], classes: list[str], label_map: Optional[str] = None
) -> dict[str, str]:
    """Map each image name (as listed in the flat folder) to its class name.

    Linear in the number of images: every lookup goes through a set or a dict. A membership test against
    the list of names scans it, once per label: quadratic, and at ILSVRC-2012's size it dominated every start.
    """
    text = path.read_text()
    names = frozenset(image_names)
    stem_to_name = {os.path.splitext(name)[0]: name for name in image_names}
    raw: dict[str, str] = {}
    first = text.lstrip().splitlines()[0] if text.strip() else ""
    if first.replace(" ", "").lower().startswith("imageid,predictionstring"):
        reader = csv.reader(text.splitlines())
        header = [column.strip().lower() for column in next(reader)]
        key, pred = header.index("imageid"), header.index("predictionstring")
        for row in reader:
            if len(row) > max(key, pred) and row[pred].split():  # a row without a label leaves its image unlabelled
                raw[row[key].strip()] = row[pred].split()[0]
    else:
        rows = [line.split() for line in text.splitlines() if line.strip()]
        if rows and all(len(r) == 1 for r in rows):
            ordered = sorted(image_names)
            if len(rows) != len(ordered):
                raise ValueError(
                    f"{path} has {len(rows)} labels for {len(ordered)} images in the flat validation folder"
                )
            raw = {name: r[0] for name, r in zip(ordered, rows)}
        else:
            raw = {r[0]: r[1] for r in rows if len(r) >= 2}
    mapping = _read_label_map(label_map, classes) if any(v.lstrip("-").isdigit() for v in raw.values()) else None
    labels: dict[str, str] = {}
    for image, label in raw.items():
        name = image if image in names else stem_to_name.get(os.path.splitext(image)[0])
        if name is not None:
            labels[name] = _resolve(label, mapping, classes, label_map)
    return labels


def list_flat_split(
    split_dir: Path,
    labels_file: Path,
    classes: list[str],
    label_map: Optional[str] = None,
    cache_dir: Optional[Path] = None,
) -> list[Sample]:
    """(path, class index) of a flat split; every image needs a label and every label a training class.

    The folder's names come from ``cache_dir`` when its listing there is current (``folder.py``); the
    label file is read at every call: it is one file, and reading it is linear."""
    if not split_dir.is_dir():
        raise FileNotFoundError(f"split folder {split_dir} does not exist")
    if not labels_file.is_file():
        raise FileNotFoundError(f"data.val_labels={labels_file} does not exist")
    names = list_flat_names(split_dir, cache_dir)
    if not names:
        raise FileNotFoundError(f"{split_dir} has no image files (with data.val_labels the validation folder is flat)")
    labels = read_val_labels(labels_file, names, classes, label_map)
    unlabelled = [n for n in names if n not in labels]
    if unlabelled:
        raise ValueError(
            f"{len(unlabelled)} images of {split_dir} have no label in {labels_file}, e.g. {unlabelled[:3]}"
        )
    compare_classes(classes, sorted(set(labels.values())), "the training classes", f"the labels of {labels_file}")
    index = {name: i for i, name in enumerate(classes)}
    root = str(split_dir)
    return [(os.path.join(root, n), index[labels[n]]) for n in names]
