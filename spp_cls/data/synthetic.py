"""The embedded default data set: generated once into ``data.root`` in the ImageNet folder layout.

``root/{train,val}/<NN_class>/<index>.jpg``: class folders of JPEG files of varied sizes and aspect ratios,
read back by the same folder loader and augmentation as ImageNet.

Cache protocol: a marker file is written before the first image and ``MANIFEST.json`` (the spec and every
file's size) after the last one. A folder with the marker but without a manifest that matches the requested
spec and the files on disk is a half-written or stale cache and is rebuilt; a non-empty folder without the
marker is someone else's data and is never touched.

Several processes may ask for the same cache at once: one per node of a multi-node job (Lightning prepares
data on each node's first process) when the cache is on shared storage. They take turns on a lock file next
to the root (``.<root>.lock``), and the data set is generated into a temporary folder next to the root and
renamed into place when complete, so the root is never half of one generation and half of another, also
where the file system does not support locks.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spp_cls.data.synthetic_scenes import MAX_CLASSES, class_folder_names, draw_scene
from spp_cls.io import exclusive_lock, remove_stale_temporaries, replace_directory, temporary_path

log = logging.getLogger(__name__)

MARKER = ".spp-cls-synthetic"
MANIFEST = "MANIFEST.json"
FORMAT_VERSION = 3
_SPLIT_IDS = {"train": 0, "val": 1}
# Photo aspect ratios (long:short). Exact ratios mean every image of one ratio and orientation has the same
# size once its short side is resized, so full-image testing can batch them (few size groups per batch).
ASPECTS: tuple[tuple[int, int], ...] = ((1, 1), (5, 4), (4, 3), (3, 2), (8, 5), (16, 9))


@dataclass
class SyntheticSpec:
    """Everything that determines the generated files (also the schema of ``data.synthetic``)."""

    num_classes: int = MAX_CLASSES
    train_per_class: int = 300
    val_per_class: int = 100
    min_short_side: int = 112
    max_short_side: int = 160
    max_aspect: float = 1.6
    jpeg_quality: int = 90
    seed: int = 0

    def __post_init__(self) -> None:
        class_folder_names(self.num_classes)  # validates the class count
        if self.train_per_class < 1 or self.val_per_class < 1:
            raise ValueError("synthetic train_per_class and val_per_class must be >= 1")
        if not 16 <= self.min_short_side <= self.max_short_side:
            raise ValueError(
                f"synthetic image sides need 16 <= min_short_side <= max_short_side; "
                f"got {self.min_short_side}, {self.max_short_side}"
            )
        if self.max_aspect < 1.0 or not 1 <= self.jpeg_quality <= 95:
            raise ValueError("synthetic max_aspect must be >= 1 and jpeg_quality in 1..95")

    def per_class(self, split: str) -> int:
        return self.train_per_class if split == "train" else self.val_per_class


def image_size(spec: SyntheticSpec, rng: np.random.Generator) -> tuple[int, int]:
    """(width, height): one of ASPECTS up to ``max_aspect``, either orientation, short side a multiple of the
    ratio's denominator so that the ratio is exact."""
    lowest, highest = spec.min_short_side, spec.max_short_side
    ratios = [(p, q) for p, q in ASPECTS if p / q <= spec.max_aspect + 1e-9 and -(-lowest // q) * q <= highest]
    p, q = ratios[int(rng.integers(len(ratios)))]
    short = int(rng.integers(lowest, highest + 1))
    short = max(short - short % q, -(-lowest // q) * q)
    long = short * p // q
    return (long, short) if rng.random() < 0.5 else (short, long)


def _image_bytes(spec: SyntheticSpec, split: str, label: int, index: int) -> bytes:
    rng = np.random.default_rng([spec.seed, _SPLIT_IDS[split], label, index])
    width, height = image_size(spec, rng)
    buffer = io.BytesIO()
    draw_scene(rng, label, width, height).save(buffer, format="JPEG", quality=spec.jpeg_quality)
    return buffer.getvalue()


def _read_manifest(root: Path) -> dict | None:
    try:
        return json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def is_complete(root: Path, spec: SyntheticSpec) -> bool:
    """True if ``root`` holds exactly the files of a finished generation of ``spec``."""
    manifest = _read_manifest(root)
    if manifest is None or manifest.get("version") != FORMAT_VERSION:
        return False
    if manifest.get("spec") != dataclasses.asdict(spec):
        return False
    for rel, size in manifest.get("files", {}).items():
        path = root / rel
        if not path.is_file() or path.stat().st_size != size:
            return False
    return bool(manifest.get("files"))


def lock_path(root: Path) -> Path:
    """The lock file of a cache folder: next to it, since the folder itself is replaced as a whole."""
    return root.parent / f".{root.name}.lock"


def check_replaceable(root: Path) -> None:
    """Refuse a non-empty ``root`` that spp-cls did not generate: it is someone else's data."""
    if root.exists() and not (root / MARKER).exists() and any(root.iterdir()):
        raise FileExistsError(
            f"data.root={root} is not empty and was not generated by spp-cls; "
            f"point data.root at an empty or new folder for the synthetic data set"
        )


def generate(root: Path, spec: SyntheticSpec) -> None:
    """Write the data set into the new folder ``root`` (``ensure_synthetic_dataset`` moves it into place)."""
    root.mkdir(parents=True)
    (root / MARKER).write_text("generation started; MANIFEST.json is written when it is complete\n")
    files: dict[str, int] = {}
    for split in ("train", "val"):
        for label, folder in enumerate(class_folder_names(spec.num_classes)):
            directory = root / split / folder
            directory.mkdir(parents=True, exist_ok=True)
            for index in range(spec.per_class(split)):
                data = _image_bytes(spec, split, label, index)
                rel = f"{split}/{folder}/{index:05d}.jpg"
                (root / rel).write_bytes(data)
                files[rel] = len(data)
    manifest = dict(version=FORMAT_VERSION, spec=dataclasses.asdict(spec), files=files)
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    tmp.replace(root / MANIFEST)


def ensure_synthetic_dataset(root: str | Path, spec: SyntheticSpec) -> Path:
    """Reuse a complete cache for ``spec`` at ``root``, otherwise (re)generate it. Returns the root.

    Safe to call from several processes (and hosts) at once: see the module docstring."""
    root = Path(root).expanduser()
    if is_complete(root, spec):
        return root
    with exclusive_lock(lock_path(root)):
        if is_complete(root, spec):  # another process generated it while this one waited for the lock
            return root
        check_replaceable(root)
        if (root / MARKER).exists():
            log.warning("synthetic data at %s is incomplete or was made with another spec; regenerating", root)
        for stale in remove_stale_temporaries(root):
            log.info("removed %s, left by a generation that was killed", stale)
        total = spec.num_classes * (spec.train_per_class + spec.val_per_class)
        log.info("generating the synthetic data set (%d images) into %s", total, root)
        built = temporary_path(root)
        try:
            generate(built, spec)
            replace_directory(built, root, lambda folder: is_complete(folder, spec))
        finally:
            shutil.rmtree(built, ignore_errors=True)  # what an interrupted generation wrote
    return root
