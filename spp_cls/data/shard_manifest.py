"""``manifest.json`` of a WebDataset shard folder: what the converter wrote and what the reader trusts.

::

    {"format": "spp-cls-shards", "version": 1,
     "classes": ["n01440764", ...],                     # the class index: label i is classes[i]
     "splits": {"train": {"samples": 1281167,
                          "shards": [{"name": "train-000000.tar", "samples": 1000}, ...],
                          "skipped": [{"path": "n01440764/bad.JPEG", "reason": "..."}]},
                "val": {...}},
     "settings": {"shard_size": 1000, "resize_short": null, "quality": null, "seed": 0, "source": "/data/imagenet"}}

Each sample of a shard is ``<key>.<ext>`` (the image bytes: ``jpg``/``png``/``img`` by content), ``<key>.cls``
(the class index as decimal text) and ``<key>.src`` (the source file, relative to its split folder).
The reader takes the epoch length and the class index from here, never from the tar files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

MANIFEST_NAME = "manifest.json"
FORMAT = "spp-cls-shards"
VERSION = 1
IMAGE_EXTENSIONS = ("jpg", "png", "img")


@dataclass(frozen=True)
class ShardInfo:
    url: str
    samples: int


@dataclass(frozen=True)
class ShardSplit:
    """The shards of one split, as URLs or paths the reader can open."""

    name: str
    shards: tuple[ShardInfo, ...]

    @property
    def samples(self) -> int:
        return sum(s.samples for s in self.shards)


@dataclass(frozen=True)
class ShardManifest:
    root: str
    classes: tuple[str, ...]
    splits: dict[str, ShardSplit]
    settings: dict[str, Any]

    def stored_short_side(self, name: str) -> Optional[int]:
        """The short side split ``name`` was resized to by ``make_shards --resize-short`` (None: original
        files). Manifests from before ``--resize-splits`` resized every split."""
        short = self.settings.get("resize_short")
        if short is None:
            return None
        return int(short) if name in self.settings.get("resize_splits", list(self.splits)) else None

    def split(self, name: str) -> ShardSplit:
        if name not in self.splits:
            raise ValueError(f"{self.root}/{MANIFEST_NAME} has no split {name!r}; it has {sorted(self.splits)}")
        if not self.splits[name].shards:
            raise ValueError(f"{self.root}/{MANIFEST_NAME}: split {name!r} has no shards")
        return self.splits[name]


def _join(root: str, name: str) -> str:
    return f"{root.rstrip('/')}/{name}"


def manifest_from_dict(content: dict[str, Any], root: str) -> ShardManifest:
    if content.get("format") != FORMAT or content.get("version") != VERSION:
        raise ValueError(f"{root}/{MANIFEST_NAME} is not an spp-cls shard manifest (format {FORMAT} v{VERSION})")
    splits = {
        name: ShardSplit(name, tuple(ShardInfo(_join(root, s["name"]), int(s["samples"])) for s in split["shards"]))
        for name, split in content["splits"].items()
    }
    return ShardManifest(root, tuple(content["classes"]), splits, dict(content.get("settings", {})))


def load_manifest(root: str) -> ShardManifest:
    """Read ``root/manifest.json`` from a local folder or, through webdataset's gopen, a URL."""
    if "://" in root or root.startswith("pipe:"):
        from webdataset.gopen import gopen

        with gopen(_join(root, MANIFEST_NAME)) as stream:
            content = json.loads(stream.read())
        return manifest_from_dict(content, root)
    path = Path(root).expanduser() / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: data.root must be a shard folder made by "
            f"`python -m spp_cls.data.make_shards SRC DST`"
        )
    return manifest_from_dict(json.loads(path.read_text()), str(path.parent))
