"""Streaming reader of WebDataset shards (``make_shards.py``'s), with exact epochs across nodes x GPUs x workers.

webdataset opens the URLs (``gopen``: local paths, ``http(s)://`` through curl, and ``pipe:`` commands when
``allow_pipe`` is set), groups the files into samples and keeps the shuffle buffer; ``spp_cls.io.tar_stream``
reads the tars; this module decides who reads what:

- Reader slots (training): every (rank, loader worker) pair is one slot, ``slot = rank * workers + worker``.
  An epoch's shard order is a pure function of (seed, epoch); slot k reads shards k, k + slots, k + 2 slots,
  ... of it. Every training step is collective (DDP's gradient all-reduce), so a reader without shards would
  leave its rank short of batches and the others waiting for it forever: fewer training shards than slots is
  an error at start, naming the numbers.
- Evaluation has no per-step collective, so a worker may have nothing to read; but a *rank* without a batch
  skips the whole evaluation loop (Lightning does so for a loader of length 0) while the others wait for it
  in the epoch-end metric sync. Evaluation shards are therefore dealt to ranks first (shard i to rank
  ``i % world_size``) and then to that rank's workers, and need only one shard per rank. The converter's
  ``--readers`` cuts a split into enough shards to keep every worker busy.
- Training epochs have a fixed length from the manifest: ``samples // global batch`` steps on every rank,
  spread over the workers the way the DataLoader polls them. A slot that runs out of shards before its
  quota starts another pass over its shards (in a new order), so every rank runs the same number of steps;
  a few samples are seen twice or not at all in an epoch, as with any shard-level split. A batch may span
  two passes (a slot's shards may hold less than one batch).
- Evaluation reads every sample exactly once: no shuffling, no quota, the last batch of a slot may be short.
- The input size of a training batch is ``input_size_for_epoch`` (the class-folder path's schedule), and
  each sample's augmentation is seeded by (seed, epoch, sample key).
- A sample that cannot be decoded is skipped and counted like a bad file in a class folder; a shard that
  cannot be opened or read to the end is skipped and reported (``skipped_shards``), in evaluation with the
  samples it did not give counted as skipped; a slot whose shards are all unreadable raises instead of
  spinning. A reader that stops inside a shard (training, at its quota) is no error.
"""

from __future__ import annotations

import logging
import random
from typing import Any, Callable, Iterator, Sequence

from torch.utils.data import IterableDataset, get_worker_info
from webdataset.filters import shuffle as wds_shuffle
from webdataset.gopen import gopen
from webdataset.tariterators import group_by_keys

from spp_cls.data.decode import DecodeError
from spp_cls.data.device_decode import view_sample
from spp_cls.data.folder import Skipped, collate_skipping
from spp_cls.data.sampling import input_size_for_epoch, mix_seed, sample_seed
from spp_cls.data.shard_manifest import IMAGE_EXTENSIONS, ShardSplit
from spp_cls.data.transforms import View
from spp_cls.io.tar_stream import tar_members

log = logging.getLogger(__name__)


def _close_quietly(stream: Any) -> None:
    """Close a shard's stream whose outcome no longer matters (already failed, or abandoned by the reader):
    a pipe's exit status then only says that its reader left early (curl exits 23, cat dies of SIGPIPE)."""
    if stream is None:
        return
    try:
        stream.close()
    except Exception as err:
        log.debug("closing an abandoned shard stream: %s", err)


def _class_number(field: bytes) -> int:
    """A sample's ``cls`` field (the class index as text); ``DecodeError`` for anything else, so that a malformed
    sample is skipped and counted like an unreadable image instead of stopping the reader."""
    try:
        target = int(field)
    except (TypeError, ValueError):
        raise DecodeError(f"its cls field {bytes(field)[:20]!r} is not a class number") from None
    if target < 0:
        raise DecodeError(f"its cls field {target} is not a class number")
    return target


def _shard_files(urls: Sequence[str], on_error: Callable[[Exception, str], bool]) -> Iterator[dict[str, Any]]:
    """The files of each shard as webdataset's ``group_by_keys`` takes them, with its end-of-shard marker
    (``{}``) after each shard, so that no sample spans two. webdataset's ``gopen`` opens the URL (a path,
    ``http(s)://``, ``pipe:``); ``tar_members`` reads it (faster than webdataset's ``tarfile``-based iterator).
    An error while opening, reading or closing a shard (a pipe's exit status is checked at its close) goes to
    ``on_error`` with the URL. A reader that stops mid-shard (a training worker at its quota closes this
    generator) is no error: the stream is closed quietly and nothing more is yielded, as ``close()`` requires."""
    for url in urls:
        stream = None
        try:
            stream = gopen(url)
            for name, data in tar_members(stream):
                yield {"fname": name, "data": data, "__url__": url}
            stream.close()
        except GeneratorExit:
            _close_quietly(stream)
            raise
        except Exception as err:  # any failure of one shard (I/O, format, a pipe's exit status) skips its rest
            _close_quietly(stream)
            if not on_error(err, url):
                raise
        yield {}


def check_urls(urls: Sequence[str], allow_pipe: bool) -> None:
    """``pipe:`` runs a shell command per shard: only when the user asked for it."""
    piped = [u for u in urls if u.startswith("pipe:")]
    if piped and not allow_pipe:
        raise ValueError(f"shard URLs run shell commands ({piped[0]!r}); set data.allow_pipe=true to allow pipe: URLs")


def check_reader_slots(num_shards: int, world_size: int, num_workers: int, split: str, train: bool = True) -> None:
    """Training: every reader slot needs at least one shard, or it idles and DDP waits on it forever.
    Evaluation: every process needs one (idle workers are fine; see the module docstring)."""
    workers = max(1, num_workers)
    if train and num_shards < world_size * workers:
        raise ValueError(
            f"the {split} split has {num_shards} shards but {world_size} processes x {workers} loader "
            f"workers = {world_size * workers} readers need at least one each for training; lower "
            f"data.num_workers or re-shard with --readers {world_size * workers} (or a smaller --shard-size)"
        )
    if not train and num_shards < world_size:
        raise ValueError(
            f"the {split} split has {num_shards} shards but {world_size} processes need at least one each for "
            f"evaluation; re-shard with --readers {world_size * workers} (or a smaller --shard-size)"
        )


class ShardStream(IterableDataset):
    """Batches (dicts as ``collate_skipping`` makes them) from the shards of one split, for one rank.

    Args:
        split: the split's shards and sample counts (from the manifest).
        view: ``TrainView``/``CenterView``-like callable ``(image, size, rng) -> dict``.
        batch_size: batch size of this rank.
        train: training (shuffled, fixed-length epochs, scheduled sizes) or evaluation (each sample once).
        sizes, schedule, seed: the multi-size schedule and the seed of shard orders and augmentation.
        eval_size: the input size of evaluation batches.
        world_size, rank, num_workers: the reader layout (``num_workers`` of the DataLoader, 0 = main process).
        shuffle_buffer: samples held by webdataset's shuffle buffer in each worker (training).
        max_pixels: larger images are skipped.
        allow_pipe: allow ``pipe:`` shard URLs.
        encoded: deliver JPEG bytes and the view's plan, for decoding on the device (``device_decode.py``).
    """

    def __init__(
        self,
        split: ShardSplit,
        view: View,
        batch_size: int,
        train: bool,
        sizes: Sequence[int],
        schedule: str,
        seed: int,
        eval_size: int,
        world_size: int = 1,
        rank: int = 0,
        num_workers: int = 0,
        shuffle_buffer: int = 2000,
        max_pixels: int = 89_478_485,
        allow_pipe: bool = False,
        encoded: bool = False,
    ) -> None:
        check_urls([s.url for s in split.shards], allow_pipe)
        check_reader_slots(len(split.shards), world_size, num_workers, split.name, train)
        self.split, self.view, self.batch_size, self.train = split, view, batch_size, train
        self.sizes, self.schedule, self.seed, self.eval_size = tuple(sizes), schedule, seed, eval_size
        self.world_size, self.rank, self.workers = world_size, rank, max(1, num_workers)
        self.shuffle_buffer, self.max_pixels, self.encoded = shuffle_buffer, max_pixels, encoded
        self.epoch = 0
        if train and self.steps_per_epoch() == 0:
            raise ValueError(
                f"the {split.name} split has {split.samples} samples, fewer than one global batch of "
                f"{batch_size * world_size}"
            )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def steps_per_epoch(self) -> int:
        """Training batches per rank: the same on every rank."""
        return self.split.samples // (self.batch_size * self.world_size)

    def _slot_shards(self, slot: int, order: Sequence[int]) -> list[int]:
        return list(order[slot :: self.world_size * self.workers])

    def _eval_shards(self, worker: int) -> list[int]:
        """Evaluation: this rank's shards (every ``world_size``-th, from its rank), dealt to its workers."""
        return list(range(len(self.split.shards))[self.rank :: self.world_size][worker :: self.workers])

    def _quota(self, worker: int) -> int:
        """Training batches of one worker: the DataLoader takes batch i from worker i % workers."""
        steps = self.steps_per_epoch()
        return steps // self.workers + (1 if worker < steps % self.workers else 0)

    def __len__(self) -> int:
        if self.train:
            return self.steps_per_epoch()
        total = 0
        for worker in range(self.workers):
            samples = sum(self.split.shards[i].samples for i in self._eval_shards(worker))
            total += -(-samples // self.batch_size)
        return total

    def _epoch_order(self, epoch: int, passes: int) -> list[int]:
        order = list(range(len(self.split.shards)))
        random.Random(mix_seed("shards", self.seed, epoch, passes)).shuffle(order)
        return order

    def _read(
        self, shard_ids: list[int], errors: list[str], failed: list[str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Raw samples of the given shards; an unreadable shard is recorded once in ``errors`` (and its URL in
        ``failed``) and the rest of it skipped (the samples read before the error are kept; a sample cut short
        by it lacks a field, and ``_decode`` skips and counts it)."""
        urls = [self.split.shards[i].url for i in shard_ids]
        seen: set[str] = set()

        def record(err: Exception, url: str | None = None) -> bool:
            if url is None:  # from group_by_keys, which appends its own (useless) arguments to the error's
                text = " ".join(str(a) for a in err.args)
                url = next((u for u in urls if u in text), text[:200])
                reason = str(err.args[0]) if err.args else ""
            elif isinstance(err, OSError) and err.strerror:
                reason = f"{type(err).__name__}: {err.strerror}"  # not err.args[0], the errno; the URL is said
            else:
                reason = str(err)
            if url not in seen:
                seen.add(url)
                if failed is not None and url in urls:
                    failed.append(url)
                errors.append(f"{url}: {reason.split(' @ ')[0][:200] or type(err).__name__}")
                log.warning("skipping the rest of shard %s", errors[-1])
            return True

        return group_by_keys(_shard_files(urls, record), handler=record)

    def _decode(self, raw: dict[str, Any], size: int, epoch: int) -> dict[str, Any] | Skipped:
        field = next((ext for ext in IMAGE_EXTENSIONS if ext in raw), None)
        source = raw.get("src")
        sample_name = source.decode(errors="replace") if isinstance(source, bytes) else raw.get("__key__")
        name = f"{raw.get('__url__', '?')}:{sample_name}"
        try:
            if field is None or "cls" not in raw:
                raise DecodeError(f"sample {raw.get('__key__')} has no image or no cls field")
            target = _class_number(raw["cls"])
            rng = random.Random(sample_seed(self.seed, epoch, raw["__key__"])) if self.train else None
            sample = view_sample(raw[field], self.view, size, rng, self.max_pixels, self.encoded, name)
        except DecodeError as err:
            log.warning("skipping %s: %s", name, err)
            return Skipped(name, str(err))
        sample["target"] = target
        return sample

    def _eval_batches(self, shard_ids: list[int], epoch: int) -> Iterator[dict[str, Any]]:
        """Every sample of the shards once, in batches; the last one may be short.

        A shard that fails must be reported even when it is the last one read (or the only one): each batch
        is held until the next sample arrives, so the errors met after it still ride on it, and a reader
        with no sample at all yields one batch of errors only (``image`` None, like a batch whose images were
        all unreadable; it fits in ``__len__``, which counts at least one batch for a shard). The samples an
        unreadable shard never gave (its manifest count less those read) are counted as skipped in that last
        batch, so that images + skipped still add up to the split and ``data.max_skip_fraction`` applies."""
        errors: list[str] = []
        failed: list[str] = []
        read: dict[str, int] = {}
        held: dict[str, Any] | None = None
        pending: list[Any] = []
        for raw in self._read(shard_ids, errors, failed):
            url = raw.get("__url__", "?")
            read[url] = read.get(url, 0) + 1
            if held is not None:
                yield held
                held = None
            pending.append(self._decode(raw, self.eval_size, epoch))
            if len(pending) == self.batch_size:
                held, pending = self._collate(pending, errors), []
        if held is None and (pending or errors):
            held = self._collate(pending, errors)
        if held is None:
            return
        held["skipped_shards"].extend(errors)
        expected = {self.split.shards[i].url: self.split.shards[i].samples for i in shard_ids}
        for url in failed:
            lost = max(0, expected[url] - read.get(url, 0))
            if lost:
                held["skipped"] = held["skipped"] + lost
                held["skipped_paths"].append(f"{url}: {lost} samples not read")
        yield held

    def _train_samples(self, slot: int, epoch: int, errors: list[str]) -> Iterator[dict[str, Any]]:
        """Raw samples of the slot's shards, pass after pass (each in a new order), until the caller has its
        quota. Only a pass that gives no sample at all stops the slot: a slot whose shards hold less than a
        batch fills it across passes."""
        passes = 0
        while True:
            shards = self._slot_shards(slot, self._epoch_order(epoch, passes))
            rng = random.Random(mix_seed("buffer", self.seed, epoch, passes, slot))
            shuffle = wds_shuffle(self.shuffle_buffer, min(self.shuffle_buffer, 100), rng=rng)
            count = 0
            for raw in shuffle(self._read(shards, errors)):
                count += 1
                yield raw
            if not count:
                urls = [self.split.shards[i].url for i in shards]
                raise RuntimeError(f"reader slot {slot} got no sample from its shards {urls}: {errors[:3]}")
            passes += 1

    @staticmethod
    def _collate(pending: list[Any], errors: list[str]) -> dict[str, Any]:
        batch = collate_skipping(pending)
        batch["skipped_shards"] = list(errors)
        errors.clear()
        return batch

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker = info.id if info is not None else 0
        if info is not None and info.num_workers != self.workers:
            raise RuntimeError(f"ShardStream was built for {self.workers} workers but runs in {info.num_workers}")
        slot = self.rank * self.workers + worker
        epoch = self.epoch
        if not self.train:
            shards = self._eval_shards(worker)
            if shards:  # a worker of a rank with fewer shards than workers has nothing to read
                yield from self._eval_batches(shards, epoch)
            return
        size = input_size_for_epoch(self.sizes, self.schedule, self.seed, epoch)
        quota, produced = self._quota(worker), 0
        if quota == 0:
            return
        errors: list[str] = []
        pending: list[Any] = []
        for raw in self._train_samples(slot, epoch, errors):
            pending.append(self._decode(raw, size, epoch))
            if len(pending) == self.batch_size:
                yield self._collate(pending, errors)
                pending = []
                produced += 1
                if produced == quota:
                    return
