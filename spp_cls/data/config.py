"""``data.*``: every data setting, declared once.

``DataConfig`` is at the same time the structured-config node that Hydra checks ``conf/data/*.yaml`` against
(``spp_cls/config/schema.py`` composes it into the run config) and the object the data layer receives: the
run's ``cfg.data`` becomes one with ``OmegaConf.to_object``, and the image pipeline (``transforms.py``,
``normalize.py``), the data module and the tools read their settings from it. Adding a data option is one
field here, its check in ``value_errors``/``source_errors`` (if it needs one) and the code that uses it.

The checks live here, beside the settings, and name each setting by its key under ``prefix``: the start-up
validation (``spp_cls/config/validation.py``) reports them as ``data.<key>`` together with every other
problem of the config; constructing a ``DataConfig`` in code runs the checks that need no file system
(``value_errors``), so that a wrong value fails where it is made and not in a loader worker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from spp_cls.data.auto_augment import AUTO_AUGMENTS
from spp_cls.data.sampling import SIZE_SCHEDULES
from spp_cls.data.synthetic import SyntheticSpec

#: where the images come from: class folders (root/<split>/<class>/<image>) | WebDataset shards (root/manifest.json)
FORMATS = ("folders", "shards")
DECODE_DEVICES = ("cpu", "cuda")
INTERPOLATIONS = ("bilinear", "bicubic")
TRAIN_CROPS = ("random", "five")
NORMALIZATIONS = ("channel", "mean_image")

# PCA colour lighting: eigenvalues/eigenvectors (columns) of the 3x3 covariance of ImageNet-1k training
# pixels in RGB order, values in [0, 1]. These are the figures published with fb.resnet.torch
# (datasets/imagenet.lua) and used by most PyTorch ports of AlexNet's "color altering"; recompute them for
# another data set with `python -m spp_cls.data.stats` and set data.eigval / data.eigvec.
IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)


@dataclass
class DataConfig:
    """The data set, its loading, the paper's image pipeline and the policy on bad input (``data.*``).

    Sequences are lists because that is what a structured config holds; the code only reads them.
    ``lighting_std`` is the standard deviation of AlexNet's per-image PCA coefficients (0 disables).
    ``normalization`` is ``channel`` (subtract ``mean``, divide by ``std``) or ``mean_image`` (subtract the
    per-pixel mean image stored in ``mean_image``, warped to the input size, then divide by ``std``).
    ``max_pixels`` rejects larger images from their header. ``reduced_decode`` lets large JPEGs be decoded
    at 1/2, 1/4 or 1/8 scale when that still leaves enough pixels for the view.
    """

    name: str = MISSING
    root: str = MISSING
    num_classes: int = MISSING
    batch_size: int = 128  # global: all devices together
    num_workers: Any = "auto"  # loader processes per device; auto: this process's CPU cores per device, less one
    pin_memory: Optional[bool] = None  # page-locked batches for asynchronous copies; null: on a GPU
    resize_size: int = 256
    crop_size: int = 224
    interpolation: str = "bilinear"
    mean: List[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: List[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])
    train_split: str = "train"
    val_split: str = "val"
    synthetic: Optional[SyntheticSpec] = None  # set: root is a generated cache (data=synthetic)
    # where the images come from: folders (root/<split>/<class>/<image>) | shards (root/manifest.json)
    format: str = "folders"
    synthetic_folder: Optional[str] = None  # shards of the embedded set: where its class folders go
    shard_size: int = 1000  # shards of the embedded set: samples per shard
    shuffle_buffer: int = 2000  # shards: samples in each worker's shuffle buffer
    allow_pipe: bool = False  # shards: allow pipe: URLs (they run shell commands)
    val_labels: Optional[str] = None  # flat validation folder: its label file
    val_label_map: Optional[str] = None  # integer labels: sorted | PATH (map_clsloc.txt or one wnid per line)
    list_cache_dir: Optional[str] = None  # cache of class-folder file lists (null: no cache)
    # the paper's augmentation
    train_sizes: List[int] = field(default_factory=lambda: [224])  # multi-size training: e.g. [224, 180]
    size_schedule: str = "alternate"  # alternate | random
    train_crop: str = "random"  # random | five (center + 4 corners)
    flip: bool = True
    lighting_std: float = 0.1
    eigval: List[float] = field(default_factory=lambda: list(IMAGENET_EIGVAL))
    eigvec: List[List[float]] = field(default_factory=lambda: [list(r) for r in IMAGENET_EIGVEC])
    normalization: str = "channel"  # channel | mean_image
    # modern recipe: none (the paper's augmentation) | randaugment | trivialaugment on the training view
    auto_augment: str = "none"
    mean_image: Optional[str] = None
    # bad input
    max_pixels: int = 89_478_485
    reduced_decode: bool = True
    # where JPEGs of the training and validation views are decoded: cpu (loader workers) | cuda (the batch's GPU,
    # nvJPEG, from bytes the workers read; device_decode.py)
    decode_device: str = "cpu"
    max_skip_fraction: float = 0.001

    def __post_init__(self) -> None:
        problems = value_errors(self)
        if problems:
            raise ValueError("; ".join(problems))

    def decode_short_side(self, size: int) -> Optional[int]:
        """Short side the decoded image needs so that a ``size`` view keeps full resolution."""
        if not self.reduced_decode:
            return None
        return math.ceil(self.resize_size * size / self.crop_size)


def _given(data: Any, key: str) -> bool:
    """Whether ``data.<key>`` has a value (a config node raises for a missing one, a dataclass holds ``???``)."""
    try:
        value = getattr(data, key)
    except MissingMandatoryValue:
        return False
    return not (isinstance(value, str) and value == MISSING)


def valid_workers(value: Any) -> bool:
    """``num_workers``: a number >= 0 or ``auto``."""
    return value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 0)


def value_errors(data: Any, prefix: str = "") -> list[str]:
    """Problems of the values of ``data`` (a ``DataConfig`` or the ``data`` node of a run config) that need
    no file system, each naming its setting as ``<prefix><key>``; settings without a value yet are left out."""
    d, p = data, prefix
    errors: list[str] = []

    def check(ok: bool, message: str) -> None:
        if not ok:
            errors.append(message)

    if _given(d, "num_classes"):
        check(d.num_classes >= 1, f"{p}num_classes must be >= 1; got {d.num_classes}")
    check(d.batch_size >= 1, f"{p}batch_size must be >= 1 (it is the global batch); got {d.batch_size}")
    check(valid_workers(d.num_workers), f"{p}num_workers must be a number >= 0 or auto; got {d.num_workers!r}")
    check(d.crop_size >= 1, f"{p}crop_size must be >= 1; got {d.crop_size}")
    check(d.resize_size >= d.crop_size, f"{p}resize_size={d.resize_size} must be >= {p}crop_size={d.crop_size}")
    check(
        d.interpolation in INTERPOLATIONS, f"{p}interpolation={d.interpolation!r} is not one of {list(INTERPOLATIONS)}"
    )
    check(len(d.mean) == 3 and len(d.std) == 3, f"{p}mean and {p}std need 3 values each")
    check(all(s > 0 for s in d.std), f"{p}std values must be > 0; got {list(d.std)}")
    check(d.format in FORMATS, f"{p}format={d.format!r} is not one of {list(FORMATS)}")
    check(
        d.size_schedule in SIZE_SCHEDULES, f"{p}size_schedule={d.size_schedule!r} is not one of {list(SIZE_SCHEDULES)}"
    )
    check(
        len(d.train_sizes) >= 1 and min(d.train_sizes) >= 1,
        f"{p}train_sizes must be one or more sizes >= 1; got {list(d.train_sizes)}",
    )
    check(d.train_crop in TRAIN_CROPS, f"{p}train_crop={d.train_crop!r} is not one of {list(TRAIN_CROPS)}")
    check(d.lighting_std >= 0, f"{p}lighting_std must be >= 0; got {d.lighting_std}")
    check(
        len(d.eigval) == 3 and [len(r) for r in d.eigvec] == [3, 3, 3],
        f"{p}eigval needs 3 values and {p}eigvec 3 rows of 3",
    )
    check(
        d.normalization in NORMALIZATIONS, f"{p}normalization={d.normalization!r} is not one of {list(NORMALIZATIONS)}"
    )
    check(
        d.normalization != "mean_image" or bool(d.mean_image),
        f"{p}normalization=mean_image needs {p}mean_image=FILE (from python -m spp_cls.data.stats); got {d.mean_image}",
    )
    check(
        d.decode_device in DECODE_DEVICES, f"{p}decode_device={d.decode_device!r} is not one of {list(DECODE_DEVICES)}"
    )
    check(d.auto_augment in AUTO_AUGMENTS, f"{p}auto_augment={d.auto_augment!r} is not one of {list(AUTO_AUGMENTS)}")
    check(
        d.auto_augment == "none" or d.decode_device == "cpu",
        f"{p}auto_augment={d.auto_augment} runs in the loader workers on the decoded view: it needs "
        f"{p}decode_device=cpu (got {d.decode_device})",
    )
    check(d.max_pixels >= 1, f"{p}max_pixels must be >= 1; got {d.max_pixels}")
    check(0 <= d.max_skip_fraction <= 1, f"{p}max_skip_fraction must be in [0, 1]; got {d.max_skip_fraction}")
    check(d.shuffle_buffer >= 1 and d.shard_size >= 1, f"{p}shuffle_buffer and {p}shard_size must be >= 1")
    return errors


def source_errors(data: Any, prefix: str = "", readers: Optional[tuple[int, int]] = None) -> list[str]:
    """Problems of the files ``data`` points at: the root, its layout or shard manifest, the label and
    mean-image files, the embedded set's spec. ``readers``: (processes, loader workers per process) of the
    run, to check that every reader of a local shard split gets a shard (None: not known, not checked)."""
    from spp_cls.data.folder import check_layout
    from spp_cls.data.shard_manifest import load_manifest
    from spp_cls.data.shards import check_reader_slots

    d, p = data, prefix
    errors: list[str] = []

    def check(ok: bool, message: str) -> None:
        if not ok:
            errors.append(message)

    if d.normalization == "mean_image" and d.mean_image:
        check(
            Path(str(d.mean_image)).expanduser().is_file(),
            f"{p}normalization=mean_image needs {p}mean_image=FILE (from python -m spp_cls.data.stats); "
            f"got {d.mean_image}",
        )
    if not _given(d, "root"):
        check(
            False,
            f"{p}root is required for {p[:-1] or 'data'}={d.name}: the folder that holds {d.train_split}/ "
            f"and {d.val_split}/",
        )
        return errors
    if d.synthetic is not None:
        check(
            d.synthetic.num_classes == d.num_classes,
            f"{p}synthetic.num_classes={d.synthetic.num_classes} must equal {p}num_classes={d.num_classes}",
        )
        if OmegaConf.is_config(d.synthetic):  # a SyntheticSpec runs its own checks when it is made
            try:
                SyntheticSpec(**OmegaConf.to_container(d.synthetic, resolve=True))  # type: ignore[arg-type]
            except ValueError as err:
                check(False, f"{p}synthetic: {err}")
        return errors
    if d.format == "shards":
        remote = "://" in d.root or d.root.startswith("pipe:")
        check(
            not d.root.startswith("pipe:") or d.allow_pipe,
            f"{p}root={d.root} is a pipe: command; set {p}allow_pipe=true",
        )
        if remote:
            return errors
        try:
            manifest = load_manifest(d.root)
        except (FileNotFoundError, ValueError, KeyError) as err:
            check(False, f"{p}root: {err}")
            return errors
        check(
            len(manifest.classes) == d.num_classes,
            f"{p}root={d.root}: the manifest has {len(manifest.classes)} classes but {p}num_classes={d.num_classes}",
        )
        stored = manifest.stored_short_side(d.train_split)
        needed = math.ceil(d.resize_size * max(d.train_sizes) / d.crop_size)
        check(
            stored is None or stored >= needed,
            f"{p}root={d.root}: the {d.train_split} split is stored at short side {stored} (make_shards --resize-short "
            f"{stored}) but {p}resize_size={d.resize_size} with {p}train_sizes up to {max(d.train_sizes)} at "
            f"{p}crop_size={d.crop_size} needs {needed}: training would upsample; convert again with --resize-short "
            f"{needed}",
        )
        stored_val = manifest.stored_short_side(d.val_split)
        check(
            stored_val is None or stored_val >= d.resize_size,
            f"{p}root={d.root}: the {d.val_split} split is stored at short side {stored_val}, under "
            f"{p}resize_size={d.resize_size}: convert it again without resizing it (--resize-splits {d.train_split})",
        )
        for split in (d.train_split, d.val_split):
            try:
                shards = len(manifest.split(split).shards)
                if readers is not None:
                    check_reader_slots(shards, readers[0], readers[1], split, train=split == d.train_split)
            except ValueError as err:
                check(False, f"{p}root={d.root}: {err}")
        return errors
    root = Path(d.root).expanduser()
    if not root.is_dir():
        check(False, f"{p}root={d.root} does not exist or is not a folder")
        return errors
    try:
        if d.val_labels:
            check_layout(root, (d.train_split,), d.num_classes)
            check(Path(d.val_labels).expanduser().is_file(), f"{p}val_labels={d.val_labels} does not exist")
            check((root / d.val_split).is_dir(), f"{p}root={d.root}: split folder {root / d.val_split} does not exist")
        else:
            check_layout(root, (d.train_split, d.val_split), d.num_classes)
    except (FileNotFoundError, ValueError) as err:
        check(False, f"{p}root={d.root}: {err}")
    return errors


def data_errors(data: Any, prefix: str = "", readers: Optional[tuple[int, int]] = None) -> list[str]:
    """Every problem of ``data``: its values, then its files."""
    errors = value_errors(data, prefix)
    return errors + source_errors(data, prefix, readers)
