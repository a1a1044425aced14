"""Class folders -> WebDataset tar shards + ``manifest.json``: ``python -m spp_cls.data.make_shards SRC DST``.

Reading 1.28 M small files over network storage is what starves GPUs; a few hundred large sequential tar
files do not. The converter reads ``SRC/<split>/<class>/<image>`` (or a flat ``SRC/val/<image>`` with
``--val-labels``), with the class index of ``folder.py`` (sorted training class folders), and writes
``DST/{split}-{k:06d}.tar`` plus ``DST/manifest.json`` in the format of ``shard_manifest.py``.

- Shuffled: the whole (file, label) list of a split is shuffled with ``random.Random(seed)`` before it is
  cut into shards of ``--shard-size`` files, so no shard holds one class and a streaming reader with a
  small shuffle buffer still sees mixed batches. Keys are ``{split}_{position:08d}`` in that order.
- Sized for its readers: every (process, loader worker) pair reads its own shards (``shards.py``), so
  training needs at least as many shards as there will be readers, and evaluation keeps every reader busy
  only with as many. ``--readers N`` (GPUs x nodes x ``data.num_workers``) cuts a split that
  ``--shard-size`` would leave with fewer than N shards into N shards of near-equal size instead: typically
  the validation split (ILSVRC-2012's 50,000 images at ``--shard-size 1000`` are 50 shards, fewer than the
  readers of 8 GPUs with 8 workers each).
- Validated: every file goes through ``decode_rgb``, the decoder the readers use; empty, truncated,
  non-image and over-``--max-pixels`` files are logged and listed in the manifest (``splits.<split>.skipped``)
  instead of being copied, so training never meets them. The original bytes are kept (no generation loss),
  unless ``--resize-short S``: images of the training split (``--resize-splits``) with a short side over S
  are resized to S and re-encoded as JPEG at ``--quality``. The paper's training never needs more than
  ``data.resize_size`` x (largest training size / ``data.crop_size``) pixels of short side (256 for its
  recipe), so storing the training split at that size loses nothing it would use and saves decoding the
  rest at every epoch; the validation split stays whole for the full-image and multi-scale protocols (up
  to 560 px). The manifest records what was resized, and the start-up validation refuses a training
  config that would need more pixels than the shards hold.
- Resumable: the plan (which file goes into which shard under which key) is a pure function of the source
  listing, the seed and the shard size, so a rerun recomputes it and only writes the shards that are missing.
  ``DST/.make_shards.json`` (written before anything else) holds the settings and a digest of the listing; a
  rerun with other settings or a changed source is refused instead of mixing two plans in one folder.

Write order of a shard, so that nothing half-written ever looks complete:

1. the tar goes to ``DST/.{name}.tmp`` and is fsync'ed;
2. the sidecar ``DST/.{name}.json`` (sample count, byte size, skipped files, plan digest) is written to a
   temporary name, fsync'ed and renamed into place, and the directory is fsync'ed;
3. the tar is renamed to ``DST/{name}`` (and the directory fsync'ed).

A shard counts as done only when its sidecar matches the plan *and* the final tar has the byte size the
sidecar records. Sidecar first means any ``*.tar`` visible under its final name is complete and described
(a reader globbing ``*.tar`` before the manifest exists never sees a partial one); a crash between 2 and 3
leaves a sidecar without its tar, which the rerun treats as not done. A chunk whose files are all bad gets a
sidecar with 0 samples and no tar (empty shards are never written), so shard numbers can have gaps; the
manifest lists the shards by name. ``manifest.json`` is written last, atomically, from the sidecars: its
presence means the conversion finished. Stale ``.*.tmp`` files are removed at the start of a run. One
converter per DST at a time.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import os
import random
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from spp_cls.data.decode import DEFAULT_MAX_PIXELS, JPEG_MAGIC, DecodeError, decode_rgb, image_size
from spp_cls.data.folder import Sample, compare_classes, list_class_folder_files, list_classes
from spp_cls.data.shard_manifest import FORMAT, MANIFEST_NAME, VERSION
from spp_cls.data.val_labels import list_flat_split
from spp_cls.io import write_atomic

log = logging.getLogger(__name__)

STATE_NAME = ".make_shards.json"
STATE_FORMAT = "spp-cls-make-shards"
STATE_VERSION = 1
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TAR_MTIME = 0  # fixed mtimes: one plan gives byte-identical shards; an int, as a float adds a PAX header per member


class ConversionError(Exception):
    """A problem with the arguments, the source or the destination (reported without a traceback)."""


@dataclass(frozen=True)
class ShardConfig:
    """Everything that decides the shards' content; stored in ``.make_shards.json`` and the manifest."""

    source: str
    shard_size: int = 1000
    resize_short: Optional[int] = None
    quality: Optional[int] = None  # only meaningful (and only recorded) with resize_short
    resize_splits: tuple[str, ...] = ("train",)  # the splits resize_short applies to (recorded with it)
    seed: int = 0
    max_pixels: int = DEFAULT_MAX_PIXELS
    splits: tuple[str, ...] = ("train", "val")
    val_labels: Optional[str] = None
    val_label_map: Optional[str] = None
    readers: Optional[int] = None  # None: no minimum number of shards per split

    def to_dict(self) -> dict[str, Any]:
        """The settings as stored; ``readers`` only when given, so that conversions made before it existed
        (and their stamps) stay identical and resumable."""
        content = asdict(self)
        content["splits"] = list(self.splits)
        if content["readers"] is None:
            del content["readers"]
        if self.resize_short is None:  # unresized conversions keep the stamps they had before the option existed
            del content["resize_splits"]
        else:
            content["resize_splits"] = list(self.resize_splits)
        return content

    def resizes(self, split: str) -> Optional[int]:
        """The short side ``split`` is stored at, if it is resized (None: original files)."""
        return self.resize_short if split in self.resize_splits else None


@dataclass(frozen=True)
class PlannedSample:
    key: str
    path: str
    label: int
    src: str  # relative to the split folder, with "/" separators


@dataclass(frozen=True)
class ShardPlan:
    """One shard to write: its name and the files (in order) that go into it."""

    split: str
    index: int
    samples: tuple[PlannedSample, ...]

    @property
    def name(self) -> str:
        return shard_name(self.split, self.index)

    @property
    def digest(self) -> str:
        """Identity of the plan of this shard (keys, sources, labels), recorded in its sidecar."""
        text = "".join(f"{s.key}\t{s.src}\t{s.label}\n" for s in self.samples)
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class ShardResult:
    split: str
    index: int
    name: str
    samples: int
    bytes: int
    skipped: list[dict[str, str]]
    reused: bool = False


@dataclass
class ConversionReport:
    """What a run did, per split: shards written and reused, samples, skipped files."""

    dst: str
    written: dict[str, int] = field(default_factory=dict)
    reused: dict[str, int] = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, list[dict[str, str]]] = field(default_factory=dict)


def shard_name(split: str, index: int) -> str:
    return f"{split}-{index:06d}.tar"


def sidecar_name(name: str) -> str:
    return f".{name}.json"


def image_extension(data: bytes) -> str:
    """The sample field of an image, by content: the reader decodes by content anyway, the name is a hint."""
    if data.startswith(JPEG_MAGIC):
        return "jpg"
    if data.startswith(PNG_MAGIC):
        return "png"
    return "img"


# --------------------------------------------------------------------------------------------------- listing


def _relative(path: str, split_dir: Path) -> str:
    return os.path.relpath(path, split_dir).replace(os.sep, "/")


def list_sources(settings: ShardConfig) -> tuple[list[str], dict[str, list[Sample]]]:
    """The class index and the sorted (path, label) list of every split, with ``folder.py``'s rules."""
    root = Path(settings.source)
    if not root.is_dir():
        raise ConversionError(f"SRC {root} does not exist or is not a folder")
    if settings.val_labels is not None and "val" not in settings.splits:
        raise ConversionError("--val-labels is for a flat val split, but val is not among --splits")
    if settings.val_labels is not None and not Path(settings.val_labels).is_file():
        raise ConversionError(f"--val-labels {settings.val_labels} does not exist")
    flat = {"val"} if settings.val_labels is not None else set()
    if (root / "train").is_dir():
        classes, reference = list_classes(root / "train"), str(root / "train")
    else:
        folder_splits = [s for s in settings.splits if s not in flat]
        if not folder_splits:
            raise ConversionError(f"{root / 'train'} does not exist: a flat val split needs the training class folders")
        classes, reference = list_classes(root / folder_splits[0]), str(root / folder_splits[0])
        log.warning("%s has no train folder: the class index is the class folders of %s", root, reference)
    listings: dict[str, list[Sample]] = {}
    for split in settings.splits:
        split_dir = root / split
        if split in flat:
            assert settings.val_labels is not None
            samples = list_flat_split(split_dir, Path(settings.val_labels), classes, settings.val_label_map)
        else:
            compare_classes(classes, list_classes(split_dir), reference, str(split_dir))
            samples = list_class_folder_files(split_dir, classes)
        if not samples:
            raise ConversionError(f"{split_dir} has no image files")
        listings[split] = samples
    return classes, listings


def listing_digest(split_dir: Path, samples: Sequence[Sample]) -> str:
    text = "".join(f"{_relative(path, split_dir)}\t{label}\n" for path, label in samples)
    return hashlib.sha256(text.encode()).hexdigest()


def shard_bounds(samples: int, shard_size: int, readers: Optional[int] = None) -> list[tuple[int, int]]:
    """[start, end) of each shard of a split of ``samples`` files: chunks of ``shard_size``, or, when that
    gives fewer than ``readers`` shards, ``readers`` chunks of near-equal size (one file each if there are
    fewer files than readers), so that every reader gets a shard."""
    if readers is not None and -(-samples // shard_size) < readers:
        count = min(readers, samples)
        return [(k * samples // count, (k + 1) * samples // count) for k in range(count)]
    return [(start, min(start + shard_size, samples)) for start in range(0, samples, shard_size)]


def plan_split(
    split: str, split_dir: Path, samples: Sequence[Sample], seed: int, shard_size: int, readers: Optional[int] = None
) -> list[ShardPlan]:
    """Shuffle the split's files with ``Random(seed)`` and cut them into shards (``shard_bounds``); a pure
    function of its inputs."""
    order = list(samples)
    random.Random(seed).shuffle(order)
    planned = [
        PlannedSample(f"{split}_{position:08d}", path, label, _relative(path, split_dir))
        for position, (path, label) in enumerate(order)
    ]
    return [
        ShardPlan(split, k, tuple(planned[start:end]))
        for k, (start, end) in enumerate(shard_bounds(len(planned), shard_size, readers))
    ]


# --------------------------------------------------------------------------------------------------- images


def resize_for_storage(image: torch.Tensor, width: int, height: int, short: int) -> torch.Tensor:
    """The image as a shard stores it (``--resize-short``): a (3, h, w) uint8 image, possibly decoded at reduced
    scale, resized to short side ``short`` with the aspect ratio of the original ``width`` x ``height`` (not of
    the reduced decode, whose sides are rounded); antialiased, so downscaling does not alias."""
    if height <= width:
        size = (short, max(1, round(width * short / height)))
    else:
        size = (max(1, round(height * short / width)), short)
    resized = F.interpolate(image[None].float(), size=size, mode="bilinear", antialias=True, align_corners=False)
    return resized[0].round_().clamp_(0, 255).to(torch.uint8)


def prepare_image(data: bytes, resize_short: Optional[int], quality: int, max_pixels: int) -> bytes:
    """The bytes to store for one file, or ``DecodeError`` if the readers could not use it.

    Always decodes (that is the validation). Without ``resize_short`` the original bytes are returned; with
    it, images whose short side is over ``resize_short`` are resized and re-encoded as JPEG.
    """
    image = decode_rgb(data, resize_short, max_pixels)
    if resize_short is None:
        return data
    width, height = image_size(data, max_pixels)  # the header only: the file has just been decoded
    if min(width, height) <= resize_short:
        return data
    resized = resize_for_storage(image, width, height, resize_short)
    buffer = io.BytesIO()
    Image.fromarray(resized.permute(1, 2, 0).numpy()).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------------- writing


def _fsync_dir(path: Path) -> None:
    """Make renames in ``path`` durable (a no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json_atomic(path: Path, content: Any) -> None:
    """Write JSON to a temporary name, fsync, rename: readers see the old file or the new one, never half."""
    write_atomic(path, json.dumps(content, indent=1) + "\n")


@dataclass(frozen=True)
class WriteOptions:
    resize_short: Optional[int]
    resize_splits: tuple[str, ...]
    quality: int
    max_pixels: int


def write_shard(dst: Path, plan: ShardPlan, options: WriteOptions) -> ShardResult:
    """Validate, (optionally) resize and write one shard, in the crash-safe order of the module docstring."""
    from webdataset.writer import TarWriter

    final, sidecar, tmp = dst / plan.name, dst / sidecar_name(plan.name), dst / f".{plan.name}.tmp"
    for old in (final, sidecar):  # a half-done earlier attempt: never let its pieces pass as this one
        old.unlink(missing_ok=True)
    skipped: list[dict[str, str]] = []
    written = 0
    try:
        with open(tmp, "wb") as stream:
            with TarWriter(stream, encoder=False, mtime=TAR_MTIME) as writer:
                for sample in plan.samples:
                    try:
                        with open(sample.path, "rb") as f:
                            data = f.read()
                        resize = options.resize_short if plan.split in options.resize_splits else None
                        data = prepare_image(data, resize, options.quality, options.max_pixels)
                    except (OSError, DecodeError) as err:
                        skipped.append({"path": sample.src, "reason": str(err)})
                        continue
                    writer.write(
                        {
                            "__key__": sample.key,
                            image_extension(data): data,
                            "cls": str(sample.label).encode(),
                            "src": sample.src.encode("utf-8"),
                        }
                    )
                    written += 1
            stream.flush()
            os.fsync(stream.fileno())
        size = tmp.stat().st_size if written else 0
        write_json_atomic(
            sidecar,
            {
                "name": plan.name,
                "split": plan.split,
                "index": plan.index,
                "plan": plan.digest,
                "samples": written,
                "bytes": size,
                "skipped": skipped,
            },
        )
        _fsync_dir(dst)
        if written:
            os.replace(tmp, final)
            _fsync_dir(dst)
        else:
            tmp.unlink()  # empty shards are never written
    finally:
        tmp.unlink(missing_ok=True)
    return ShardResult(plan.split, plan.index, plan.name, written, size, skipped)


def completed_shard(dst: Path, plan: ShardPlan) -> Optional[ShardResult]:
    """The result of an earlier run's shard if it is complete and of this plan, else None."""
    try:
        content = json.loads((dst / sidecar_name(plan.name)).read_text())
        if content.get("plan") != plan.digest:
            return None
        samples, size = int(content["samples"]), int(content["bytes"])
        skipped = list(content["skipped"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if samples:
        tar = dst / plan.name
        if not tar.is_file() or tar.stat().st_size != size:
            return None
    return ShardResult(plan.split, plan.index, plan.name, samples, size, skipped, reused=True)


def _worker_init() -> None:
    torch.set_num_threads(1)  # one process per core already; threads would oversubscribe


# --------------------------------------------------------------------------------------------------- run


def _prepare_dst(dst: Path, state: dict[str, Any]) -> None:
    """Create DST or check that it is an earlier run of the same conversion; remove stale temporary files."""
    if dst.exists() and not dst.is_dir():
        raise ConversionError(f"DST {dst} exists and is not a folder")
    state_path = dst / STATE_NAME
    if state_path.is_file():
        try:
            previous = json.loads(state_path.read_text())
        except ValueError as err:
            raise ConversionError(f"{state_path} is unreadable ({err}); remove DST and start again") from None
        _check_same_run(previous, state, dst)
    elif dst.is_dir():
        others = [e for e in os.listdir(dst) if e != f"{STATE_NAME}.tmp"]
        if others:
            raise ConversionError(
                f"DST {dst} is not empty and is not an earlier run of make_shards (no {STATE_NAME}); "
                f"give an empty or new folder"
            )
    dst.mkdir(parents=True, exist_ok=True)
    stale = [e for e in os.listdir(dst) if e.startswith(".") and e.endswith(".tmp")]
    for name in stale:
        (dst / name).unlink(missing_ok=True)
    if stale:
        log.info("removed %d stale temporary files from an interrupted run", len(stale))
    if not state_path.is_file():
        write_json_atomic(state_path, state)
        _fsync_dir(dst)


def _check_same_run(previous: dict[str, Any], state: dict[str, Any], dst: Path) -> None:
    if previous.get("format") != STATE_FORMAT or previous.get("version") != STATE_VERSION:
        raise ConversionError(f"{dst / STATE_NAME} is not a make_shards state file of version {STATE_VERSION}")
    old, new = previous.get("settings", {}), state["settings"]
    differ = [
        f"{k}: {old.get(k)!r} then, {new.get(k)!r} now" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)
    ]
    if differ:
        raise ConversionError(
            f"DST {dst} holds a conversion with other settings ({'; '.join(differ)}); rerun with the same "
            f"settings to resume it, or give a new DST"
        )
    if previous.get("classes") != state["classes"]:
        raise ConversionError(f"DST {dst} was made with another class index; the source changed, give a new DST")
    for split, listing in state["listing"].items():
        before = previous.get("listing", {}).get(split)
        if before != listing:
            raise ConversionError(
                f"the files of SRC/{split} changed since DST {dst} was started ({before and before.get('files')} "
                f"then, {listing['files']} now): the shard plan would differ; give a new DST"
            )


class Progress:
    """A line to stderr (through logging) every ~5% of the images or every 10 s, whichever comes first."""

    def __init__(self, total: int, done: int) -> None:
        self.total, self.done, self.skipped = total, done, 0
        self.start, self.start_done = time.monotonic(), done
        self.last_time, self.last_done = self.start, done

    def update(self, result: ShardResult) -> None:
        self.done += result.samples + len(result.skipped)
        self.skipped += len(result.skipped)
        now = time.monotonic()
        if self.done >= self.total or self.done - self.last_done >= 0.05 * self.total or now - self.last_time >= 10:
            rate = (self.done - self.start_done) / max(now - self.start, 1e-9)
            log.info(
                "%d/%d images (%.1f%%), %.1f images/s, %d skipped; %s done",
                self.done,
                self.total,
                100.0 * self.done / max(self.total, 1),
                rate,
                self.skipped,
                result.name,
            )
            self.last_time, self.last_done = now, self.done


def _run_pending(
    dst: Path, pending: list[ShardPlan], options: WriteOptions, workers: int, progress: Progress
) -> Iterator[ShardResult]:
    if workers <= 1 or len(pending) <= 1:
        for plan in pending:
            result = write_shard(dst, plan, options)
            progress.update(result)
            yield result
        return
    # fork where there is one (as DataLoader workers): starting a process then costs milliseconds, not a fresh
    # import of torch; the parent has run no torch op in this mode, and workers only read, decode and write.
    method = "fork" if "fork" in get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(
        min(workers, len(pending)), mp_context=get_context(method), initializer=_worker_init
    ) as pool:
        queue = iter(pending)
        running: set[Future] = set()
        try:
            while True:  # at most 2 shards per worker in flight: results stream back, memory stays flat
                while len(running) < 2 * workers and (queued := next(queue, None)) is not None:
                    running.add(pool.submit(write_shard, dst, queued, options))
                if not running:
                    break
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    result = future.result()
                    progress.update(result)
                    yield result
        except BaseException:
            for future in running:
                future.cancel()
            raise


def _log_skipped(result: ShardResult) -> None:
    for item in result.skipped:
        log.warning("skipped %s/%s: %s", result.split, item["path"], item["reason"])


def convert(settings: ShardConfig, dst: Path, workers: int = 1) -> ConversionReport:
    """Convert ``settings.source`` into shards under ``dst`` (resuming an earlier run of the same settings)."""
    if settings.shard_size < 1:
        raise ConversionError("--shard-size must be >= 1")
    if settings.resize_short is not None and settings.resize_short < 1:
        raise ConversionError("--resize-short must be >= 1")
    if settings.quality is not None and not 1 <= settings.quality <= 100:
        raise ConversionError("--quality must be in 1..100")
    if settings.max_pixels < 1:
        raise ConversionError("--max-pixels must be >= 1")
    if settings.readers is not None and settings.readers < 1:
        raise ConversionError("--readers must be >= 1")
    if len(set(settings.splits)) != len(settings.splits) or not settings.splits:
        raise ConversionError(f"--splits must name distinct splits, got {list(settings.splits)}")
    if settings.resize_short is not None and not set(settings.resize_splits) <= set(settings.splits):
        raise ConversionError(
            f"--resize-splits {list(settings.resize_splits)} must be among --splits {list(settings.splits)}"
        )
    # quality only means something with resize_short: record it exactly when it is used
    settings = replace(settings, quality=(settings.quality or 95) if settings.resize_short is not None else None)
    root = Path(settings.source)
    classes, listings = list_sources(settings)
    state = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "settings": settings.to_dict(),
        "classes": classes,
        "listing": {s: {"files": len(v), "sha256": listing_digest(root / s, v)} for s, v in listings.items()},
    }
    _prepare_dst(dst, state)

    plans = {
        s: plan_split(s, root / s, v, settings.seed, settings.shard_size, settings.readers) for s, v in listings.items()
    }
    results: dict[tuple[str, int], ShardResult] = {}
    pending: list[ShardPlan] = []
    for split, split_plans in plans.items():
        for plan in split_plans:
            previous = completed_shard(dst, plan)
            if previous is None:
                pending.append(plan)
            else:
                results[(split, plan.index)] = previous
    report = ConversionReport(str(dst))
    for split, split_plans in plans.items():
        report.reused[split] = sum(1 for p in split_plans if (split, p.index) in results)
        log.info(
            "%s: %d files in %d shards of up to %d%s",
            split,
            len(listings[split]),
            len(split_plans),
            max(len(p.samples) for p in split_plans),
            f"; reusing {report.reused[split]} shards of an earlier run" if report.reused[split] else "",
        )
        if settings.readers is not None and len(split_plans) < settings.readers:
            log.warning(
                "%s: %d files cannot fill %d shards (--readers): some readers of this split will get none",
                split,
                len(listings[split]),
                settings.readers,
            )

    total = sum(len(v) for v in listings.values())
    progress = Progress(total, sum(r.samples + len(r.skipped) for r in results.values()))
    options = WriteOptions(settings.resize_short, settings.resize_splits, settings.quality or 95, settings.max_pixels)
    for result in _run_pending(dst, pending, options, workers, progress):
        results[(result.split, result.index)] = result
        _log_skipped(result)

    splits: dict[str, Any] = {}
    for split, split_plans in plans.items():
        ordered = [results[(split, p.index)] for p in split_plans]
        shards = [{"name": r.name, "samples": r.samples} for r in ordered if r.samples]
        skipped = [item for r in ordered for item in r.skipped]
        splits[split] = {"samples": sum(s["samples"] for s in shards), "shards": shards, "skipped": skipped}
        report.written[split] = sum(1 for r in ordered if not r.reused)
        report.samples[split] = splits[split]["samples"]
        report.skipped[split] = skipped
        if not shards:
            log.warning("%s: every file was skipped; the split has no shards", split)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "classes": classes,
        "splits": splits,
        "settings": settings.to_dict(),
    }
    write_json_atomic(dst / MANIFEST_NAME, manifest)
    _fsync_dir(dst)
    for split in plans:
        log.info(
            "%s: %d samples in %d shards (%d written, %d reused), %d skipped",
            split,
            report.samples[split],
            len(splits[split]["shards"]),
            report.written[split],
            report.reused[split],
            len(report.skipped[split]),
        )
    log.info("wrote %s", dst / MANIFEST_NAME)
    return report


# --------------------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m spp_cls.data.make_shards",
        description="Convert class folders (SRC/<split>/<class>/<image>, or a flat SRC/val/<image> with "
        "--val-labels) into shuffled WebDataset tar shards plus DST/manifest.json. Bad images are "
        "skipped and listed in the manifest. Rerun the same command to resume an interrupted run.",
    )
    parser.add_argument("src", metavar="SRC", help="source root with one folder per split")
    parser.add_argument("dst", metavar="DST", help="output folder (new, empty, or an earlier run to resume)")
    parser.add_argument("--shard-size", type=int, default=1000, metavar="N", help="files per shard (default 1000)")
    parser.add_argument(
        "--resize-short",
        type=int,
        default=None,
        metavar="S",
        help="re-encode images whose short side is over S to short side S (default: keep the bytes)",
    )
    parser.add_argument(
        "--quality",
        type=int,
        default=95,
        metavar="Q",
        help="JPEG quality of re-encoded images (with --resize-short; default 95)",
    )
    parser.add_argument("--seed", type=int, default=0, metavar="K", help="seed of the shuffle (default 0)")
    parser.add_argument(
        "--resize-splits",
        nargs="+",
        default=["train"],
        metavar="SPLIT",
        help="splits that --resize-short applies to (default: train; the full-image test protocols want val whole)",
    )
    parser.add_argument(
        "--splits",
        nargs="+",
        default=["train", "val"],
        metavar="SPLIT",
        help="split folders to convert (default: train val)",
    )
    parser.add_argument(
        "--val-labels",
        default=None,
        metavar="PATH",
        help="label file of a flat SRC/val folder (LOC_val_solution.csv, val.txt, ground truth)",
    )
    parser.add_argument(
        "--val-label-map",
        default=None,
        metavar="sorted|PATH",
        help="meaning of integer labels: 'sorted' (0-based, sorted training classes) or a map_clsloc.txt-style file",
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        metavar="P",
        help=f"skip images with more pixels (default {DEFAULT_MAX_PIXELS})",
    )
    parser.add_argument(
        "--workers", type=int, default=1, metavar="N", help="processes writing shards in parallel (default 1)"
    )
    parser.add_argument(
        "--readers",
        type=int,
        default=None,
        metavar="N",
        help="readers the shards will have at once: GPUs x nodes x data.num_workers; a split that "
        "--shard-size would cut into fewer than N shards (e.g. val) gets N shards of near-equal "
        "size instead (default: no minimum)",
    )
    return parser


def settings_from_args(args: argparse.Namespace) -> ShardConfig:
    def absolute(path: Optional[str]) -> Optional[str]:
        return None if path is None else str(Path(path).expanduser().resolve())

    label_map = args.val_label_map
    if label_map is not None and label_map != "sorted":
        label_map = absolute(label_map)
    return ShardConfig(
        source=str(absolute(args.src)),
        shard_size=args.shard_size,
        resize_short=args.resize_short,
        quality=args.quality if args.resize_short is not None else None,
        seed=args.seed,
        max_pixels=args.max_pixels,
        splits=tuple(args.splits),
        val_labels=absolute(args.val_labels),
        val_label_map=label_map,
        readers=args.readers,
        resize_splits=tuple(args.resize_splits),
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI entry point: 0 when done, 2 for a problem with the arguments, source or destination."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    log.setLevel(logging.INFO)
    try:
        convert(settings_from_args(args), Path(args.dst).expanduser(), workers=args.workers)
    except (ConversionError, FileNotFoundError, NotADirectoryError, ValueError) as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
