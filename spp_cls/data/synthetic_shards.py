"""The embedded data set as WebDataset shards (``data=synthetic_wds``): generated class folders, converted.

The shards follow their source: a stamp in the shard folder records the digest of the source's
``MANIFEST.json`` (which names the generation spec and every file's size) and the converter settings; when
either changes, the shard folder (only ever one the converter wrote) is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Sequence

from spp_cls.checkpointing import write_atomic
from spp_cls.data.make_shards import STATE_NAME, Settings, convert
from spp_cls.data.shard_manifest import MANIFEST_NAME
from spp_cls.data.synthetic import MANIFEST, SyntheticSpec, ensure_synthetic_dataset

log = logging.getLogger(__name__)

STAMP = ".synthetic-source.json"


def ensure_synthetic_shards(folder: Path, shards: Path, spec: SyntheticSpec, shard_size: int, splits: Sequence[str]) -> Path:
    """Generate the embedded set into ``folder`` if needed and make sure ``shards`` holds its current shards."""
    folder = ensure_synthetic_dataset(folder, spec)
    settings = Settings(source=str(folder.resolve()), shard_size=shard_size, splits=tuple(splits))
    stamp = {"source_manifest": hashlib.sha256((folder / MANIFEST).read_bytes()).hexdigest(), **settings.to_dict()}
    stamp_path = shards / STAMP
    if (shards / MANIFEST_NAME).is_file() and stamp_path.is_file() and json.loads(stamp_path.read_text()) == stamp:
        return shards
    if (shards / STATE_NAME).is_file():
        log.warning("shards in %s were made from another version of the embedded data set; rebuilding", shards)
        shutil.rmtree(shards)
    log.info("converting the embedded data set in %s into shards of %d images in %s", folder, shard_size, shards)
    convert(settings, shards)
    write_atomic(stamp_path, json.dumps(stamp, sort_keys=True))
    return shards
