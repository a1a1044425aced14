"""ImageNet-style class folders: the class index, a cached file list, flat validation with a label file,
and a dataset that skips and counts what it cannot read.

Layouts: ``root/<split>/<class>/<image>`` for every split, or a flat ``root/val/<image>`` with a label file
(``val_labels.py``). The class index is the sorted list of *training* class folders; every other split is
checked against it by class name.

Listing 1.28 M files over network storage takes minutes, so the file list of a split is cached as JSON,
keyed by the split's path and the modification times of the split folder and of each class folder (adding
or removing a file changes its folder's mtime): a second start lists nothing. A flat folder's names are
cached the same way, keyed by its path and mtime.

Several processes start at once in a multi-node job. The one that finds no current cache lists the split
while holding a lock in the cache folder and writes the cache before letting go; the others wait for
the lock and read what it wrote, so a cache on shared storage is listed by one process. Where locks are
not available each process lists for itself, and the cache stays whole: it is written atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional, Union

import torch
from torch.utils.data import default_collate
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS

from spp_cls.data.decode import DEFAULT_MAX_PIXELS, DecodeError, decode_rgb, file_image_size
from spp_cls.data.device_decode import ENCODED_FIELDS, view_sample
from spp_cls.data.sampling import SampleKey
from spp_cls.data.transforms import View
from spp_cls.io import exclusive_lock, write_atomic

log = logging.getLogger(__name__)

Sample = tuple[str, int]
LIST_CACHE_VERSION = 1
CLASS_INDEX_FILE = "classes.txt"


def list_classes(split_dir: Path) -> list[str]:
    """Sorted class-folder names of a split, or a clear error if the split is missing or flat."""
    if not split_dir.is_dir():
        raise FileNotFoundError(f"split folder {split_dir} does not exist")
    classes = sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise FileNotFoundError(
            f"{split_dir} has no class folders; expected {split_dir}/<class>/<image>, or set "
            f"data.val_labels=PATH for a flat validation folder"
        )
    return classes


def compare_classes(reference: list[str], other: list[str], reference_name: str, other_name: str) -> None:
    """Raise a ValueError that names the classes present in one split and missing in the other."""
    if reference == other:
        return
    only_ref, only_other = sorted(set(reference) - set(other)), sorted(set(other) - set(reference))
    parts = []
    if only_ref:
        parts.append(
            f"{len(only_ref)} in {reference_name} but not in {other_name} ({', '.join(only_ref[:5])}"
            f"{', ...' if len(only_ref) > 5 else ''})"
        )
    if only_other:
        parts.append(
            f"{len(only_other)} in {other_name} but not in {reference_name} ({', '.join(only_other[:5])}"
            f"{', ...' if len(only_other) > 5 else ''})"
        )
    raise ValueError("class folders differ between splits: " + "; ".join(parts))


def check_layout(root: Path, splits: tuple[str, ...], num_classes: int) -> list[str]:
    """Check that every split has the same ``num_classes`` class folders; return the class names."""
    reference: Optional[list[str]] = None
    for split in splits:
        classes = list_classes(root / split)
        if len(classes) != num_classes:
            raise ValueError(f"{root / split} has {len(classes)} class folders but data.num_classes={num_classes}")
        if reference is not None:
            compare_classes(reference, classes, str(root / splits[0]), str(root / split))
        reference = classes
    assert reference is not None
    return reference


def write_class_index(directory: str | Path, classes: list[str]) -> Path:
    """Write ``classes.txt`` (one class name per line: label i is line i) atomically into ``directory``."""
    return write_atomic(Path(directory) / CLASS_INDEX_FILE, "".join(f"{name}\n" for name in classes))


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS)


def _tree_key(split_dir: Path, classes: list[str]) -> str:
    """Identity of a class-folder tree: its path and the mtimes of the split and class folders."""
    stamps = [str(split_dir.resolve()), str(split_dir.stat().st_mtime_ns)]
    stamps += [f"{c}:{(split_dir / c).stat().st_mtime_ns}" for c in classes]
    return hashlib.sha256("\n".join(stamps).encode()).hexdigest()[:24]


def _flat_key(split_dir: Path) -> str:
    """Identity of a flat folder's listing: its path and mtime (adding or removing a file changes it)."""
    stamps = ["flat", str(split_dir.resolve()), str(split_dir.stat().st_mtime_ns)]
    return hashlib.sha256("\n".join(stamps).encode()).hexdigest()[:24]


def _read_cache(cache: Path, key: str) -> Optional[Any]:
    """The cached listing of ``key``, or None if the cache is missing, unreadable or of another tree."""
    if not cache.is_file():
        return None
    try:
        content = json.loads(cache.read_text())
        if content.get("version") == LIST_CACHE_VERSION and content.get("key") == key:
            return content["files"]
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    return None


def _cached_listing(split_dir: Path, key: str, cache_dir: Optional[Path], scan: Callable[[], Any]) -> Any:
    """``scan()``'s result for the tree ``key``: from ``cache_dir`` when current, else scanned (under the
    cache's lock, so that concurrent starts scan once) and written there."""
    if cache_dir is None:
        return scan()
    cache = cache_dir / f"{split_dir.name}-{key}.json"
    files = _read_cache(cache, key)
    if files is None:
        with exclusive_lock(cache_dir / f".{split_dir.name}.lock"):  # one per split name: no lock file per tree
            files = _read_cache(cache, key)  # written by the process that held the lock before this one
            if files is None:
                files = scan()
                write_atomic(
                    cache,
                    json.dumps({"version": LIST_CACHE_VERSION, "key": key, "root": str(split_dir), "files": files}),
                )
                return files
    log.info("file list of %s from cache %s", split_dir, cache)
    return files


def list_flat_names(split_dir: Path, cache_dir: Optional[Path] = None) -> list[str]:
    """Sorted image file names of a flat folder, from the cache when it is current."""
    if not split_dir.is_dir():
        raise FileNotFoundError(f"split folder {split_dir} does not exist")

    def scan() -> list[str]:
        with os.scandir(split_dir) as entries:
            return sorted(e.name for e in entries if e.is_file() and is_image_name(e.name))

    return list(_cached_listing(split_dir, _flat_key(split_dir), cache_dir, scan))


def _scan(split_dir: Path, classes: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Image file names per class folder (sorted) and the other files found (ignored, reported)."""
    files: dict[str, list[str]] = {}
    ignored: list[str] = []
    for name in classes:
        kept = []
        with os.scandir(split_dir / name) as entries:
            for entry in entries:
                if entry.is_file() and is_image_name(entry.name):
                    kept.append(entry.name)
                elif not entry.name.startswith("."):
                    ignored.append(f"{name}/{entry.name}")
        files[name] = sorted(kept)
    return files, ignored


def list_class_folder_files(split_dir: Path, classes: list[str], cache_dir: Optional[Path] = None) -> list[Sample]:
    """(path, class index) of every image of a class-folder split, from the cache when it is current."""

    def scan() -> dict[str, list[str]]:
        files, ignored = _scan(split_dir, classes)
        if ignored:
            log.warning(
                "%s: ignored %d files without an image extension, e.g. %s", split_dir, len(ignored), ignored[:5]
            )
        return files

    files = _cached_listing(split_dir, _tree_key(split_dir, classes), cache_dir, scan)
    root = str(split_dir)
    return [(os.path.join(root, name, f), i) for i, name in enumerate(classes) for f in files.get(name, [])]


class SkippingImageFolder(ImageFolder):
    """``ImageFolder`` over a given class index and file list, that decodes by content and skips bad files.

    ``__getitem__`` takes an index (evaluation: the view at ``crop_size``) or a ``SampleKey`` (training:
    index, input size and augmentation seed from the batch sampler) and returns a dict with the view's
    ``image`` (uint8, 3 x size x size), ``target`` and, for training, ``lighting`` (for evaluation, ``index``:
    the file's position in ``samples``); or, for a file that
    cannot be used (empty, truncated, not an image, over ``max_pixels``), a ``Skipped`` record with its
    path and reason that ``collate_skipping`` counts.

    Args:
        root: the split folder.
        view: a ``TrainView``/``CenterView``-like callable ``(image, size, rng) -> dict`` with
            ``decode_short_side(size)``.
        size: the output size for plain integer indices.
        classes: the class index (default: the sorted class folders of ``root``).
        samples: (path, class index) pairs (default: listed from ``root``, through ``list_cache_dir``).
        max_pixels: larger images are skipped.
        list_cache_dir: where file lists are cached (None: no cache).
        encoded: deliver JPEG bytes and the view's plan instead of the view, for decoding on the device
            (``device_decode.py``).
    """

    def __init__(
        self,
        root: Union[str, Path],
        view: Optional[View] = None,
        size: int = 224,
        classes: Optional[list[str]] = None,
        samples: Optional[list[Sample]] = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        list_cache_dir: Optional[Path] = None,
        encoded: bool = False,
    ) -> None:
        self._given_classes, self._given_samples, self._list_cache_dir = classes, samples, list_cache_dir
        super().__init__(str(root))
        self.view, self.size, self.max_pixels, self.encoded = view, size, max_pixels, encoded

    def find_classes(self, directory: Union[str, Path]) -> tuple[list[str], dict[str, int]]:
        classes = self._given_classes if self._given_classes is not None else list_classes(Path(directory))
        return list(classes), {name: i for i, name in enumerate(classes)}

    def make_dataset(
        self, directory: Union[str, Path], class_to_idx: dict[str, int], *args: Any, **kwargs: Any
    ) -> list[Sample]:
        if self._given_samples is not None:
            return list(self._given_samples)
        return list_class_folder_files(Path(directory), list(class_to_idx), self._list_cache_dir)

    def __getitem__(self, key: Union[int, SampleKey]) -> Union[dict[str, Any], "Skipped"]:
        if isinstance(key, SampleKey):
            index, size, rng = key.index, key.size, random.Random(key.seed)
        else:
            index, size, rng = int(key), self.size, None
        path, target = self.samples[index]
        try:
            with open(path, "rb") as f:
                data = f.read()
            if self.view is None:
                return {"image": decode_rgb(data, None, self.max_pixels), "target": target}
            sample = view_sample(data, self.view, size, rng, self.max_pixels, self.encoded, path)
        except (OSError, DecodeError) as err:
            log.warning("skipping %s: %s", path, err)
            return Skipped(path, str(err))
        sample["target"] = target
        if rng is None:  # evaluation: the file's position, so that per-image results name their image in any order
            sample["index"] = index
        return sample

    def header_size(self, index: int) -> tuple[int, int] | None:
        """(width, height) of sample ``index`` from its file's header, None when that cannot be read."""
        return file_image_size(self.samples[index][0], self.max_pixels)


class Skipped(NamedTuple):
    """A sample that could not be used, with the reason."""

    path: str
    reason: str


def collate_skipping(batch: list[Union[dict[str, Any], Skipped]]) -> dict[str, Any]:
    """Collate the usable samples; ``skipped`` counts the others and ``skipped_paths`` names them
    (``image`` is None if every sample of the batch was skipped)."""
    kept = [sample for sample in batch if not isinstance(sample, Skipped)]
    skipped = [sample.path for sample in batch if isinstance(sample, Skipped)]
    result: dict[str, Any] = {"skipped": torch.tensor(len(skipped)), "skipped_paths": skipped}
    if not kept:
        result.update(image=None, target=None)
        return result
    lists = {key: [sample.pop(key) for sample in kept] for key in ENCODED_FIELDS if key in kept[0]}
    images = [sample.pop("image") for sample in kept] if "image" in kept[0] else None
    result.update(default_collate(kept))
    result.update(lists)  # an encoded batch (device_decode.py): bytes and plans, decoded on the device
    result["image"] = collate_images(images) if images is not None else None
    return result


def collate_images(images: list[Any]) -> Any:
    """Stack same-size (3, H, W) views into a channels-last (B, 3, H, W) batch; keep anything else a list.

    The views come out of the resampler channels-last, so stacking them as (H, W, 3) arrays is a plain copy
    (into shared memory in a worker, as ``default_collate`` does), where an NCHW stack would transpose
    every image: a third of the collate time per image saved. The device-side normaliser restores the usual
    layout. Stacks of views (ten crops) are stacked as they are; images of different sizes (whole images)
    and per-sample lists (one image per scale) are never padded: they stay lists.
    """
    first = images[0]
    if not isinstance(first, torch.Tensor) or any(
        not isinstance(i, torch.Tensor) or i.shape != first.shape for i in images
    ):
        return list(images)
    if first.ndim == 3:
        return default_collate([image.permute(1, 2, 0) for image in images]).permute(0, 3, 1, 2)
    return default_collate(images)
