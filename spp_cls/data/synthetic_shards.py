"""The embedded data set as WebDataset shards (``data=synthetic_wds``): generated class folders, converted.

The shards follow their source: a stamp in the shard folder records the digest of the source's
``MANIFEST.json`` (which names the generation spec and every file's size) and the converter settings; when
either changes, the shard folder (only ever one the converter wrote) is rebuilt.

Like the class folders (``synthetic.py``), the shards may be asked for by several processes at once (one per
node, on shared storage): they take turns on a lock file next to the shard folder, and the shards are
converted into a temporary folder that is renamed into place when complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any, Sequence

from spp_cls.data.make_shards import STATE_NAME, ConversionError, ShardConfig, convert, shard_bounds
from spp_cls.data.shard_manifest import MANIFEST_NAME
from spp_cls.data.synthetic import MANIFEST, SyntheticSpec, ensure_synthetic_dataset, lock_path
from spp_cls.io import exclusive_lock, remove_stale_temporaries, replace_directory, temporary_path, write_atomic

log = logging.getLogger(__name__)

STAMP = ".synthetic-source.json"


def _is_current(shards: Path, stamp: dict[str, Any]) -> bool:
    stamp_path = shards / STAMP
    try:
        return (shards / MANIFEST_NAME).is_file() and json.loads(stamp_path.read_text()) == stamp
    except (OSError, ValueError):
        return False


def _needed_readers(spec: SyntheticSpec, shard_size: int, splits: Sequence[str], readers: int) -> int | None:
    """``readers`` if it changes how some split is cut, else None: the stamp (and so the shards) then stays
    the same when only the number of processes or workers changes."""
    for split in splits:
        samples = spec.num_classes * spec.per_class(split)
        if len(shard_bounds(samples, shard_size, readers)) != len(shard_bounds(samples, shard_size)):
            return readers
    return None


def ensure_synthetic_shards(
    folder: Path, shards: Path, spec: SyntheticSpec, shard_size: int, splits: Sequence[str], readers: int = 1
) -> Path:
    """Generate the embedded set into ``folder`` if needed and make sure ``shards`` holds its current shards,
    cut into at least ``readers`` shards per split (the processes x loader workers that will read them)."""
    folder = ensure_synthetic_dataset(folder, spec)
    settings = ShardConfig(
        source=str(folder.resolve()),
        shard_size=shard_size,
        splits=tuple(splits),
        readers=_needed_readers(spec, shard_size, splits, readers),
    )
    stamp = {"source_manifest": hashlib.sha256((folder / MANIFEST).read_bytes()).hexdigest(), **settings.to_dict()}
    if _is_current(shards, stamp):
        return shards
    with exclusive_lock(lock_path(shards)):
        if _is_current(shards, stamp):  # converted by another process while this one waited for the lock
            return shards
        if shards.exists() and not (shards / STATE_NAME).is_file() and any(shards.iterdir()):
            raise ConversionError(
                f"DST {shards} is not empty and is not an earlier run of make_shards (no {STATE_NAME}); "
                f"give an empty or new folder"
            )
        if (shards / STATE_NAME).is_file():
            log.warning("shards in %s were made from another version of the embedded data set; rebuilding", shards)
        for stale in remove_stale_temporaries(shards):
            log.info("removed %s, left by a conversion that was killed", stale)
        log.info("converting the embedded data set in %s into shards of %d images in %s", folder, shard_size, shards)
        built = temporary_path(shards)
        try:
            convert(settings, built)
            write_atomic(built / STAMP, json.dumps(stamp, sort_keys=True))
            replace_directory(built, shards, lambda candidate: _is_current(candidate, stamp))
        finally:
            shutil.rmtree(built, ignore_errors=True)
    return shards
