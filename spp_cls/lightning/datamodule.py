"""Lightning data module for image classification from class folders or WebDataset shards (ImageNet and the
embedded data set), configured by ``data.*`` (``spp_cls.data.config.DataConfig``).

``batch_size`` is global: each of the trainer's ``world_size`` processes loads ``batch_size / world_size``
images per step, and a batch size that does not divide fails at setup with a message naming both numbers.
The module splits the data over ranks itself (``use_distributed_sampler=False`` in the trainer):
training through ``ScheduledBatchSampler`` (folders) or reader slots (shards), evaluation without padding.

Loaders deliver uint8 images (in page-locked memory for a GPU: ``pin_memory``), which Lightning copies to
the device without waiting (``non_blocking``); ``on_before_batch_transfer`` keeps the books of skipped inputs
(``SkipTracker``) from the host's copy of the counts, so that no step waits for the device to read them back;
``on_after_batch_transfer`` normalises the images on the device and adds the colour lighting drawn by the loader.

Start-up on several nodes: Lightning calls ``prepare_data`` in the first process of every node, then holds
every process at a barrier until all are done; ``setup`` runs in every process after it. So ``prepare_data``
does the work that is done once per file system: it generates the embedded data set, and lists the splits
into ``data.list_cache_dir``, from which ``setup`` then reads them. Once per node rather than once per job,
because the data and the cache may be on each node's own disk (then every node needs its own copy); where
they are on shared storage, the nodes wait for each other on a lock instead of generating or listing the
same thing at once, so the work is still done once (``folder.py``, ``synthetic.py``). Without a list
cache nothing is listed in ``prepare_data``: each process lists for itself in ``setup``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from spp_cls.data.config import DataConfig
from spp_cls.data.device_decode import ENCODED_FIELDS, decode_views, plannable
from spp_cls.data.folder import (
    SkippingImageFolder,
    collate_skipping,
    compare_classes,
    list_class_folder_files,
    list_classes,
    list_flat_names,
    write_class_index,
)
from spp_cls.data.loader import EpochAwareDataLoader, ResumableDataLoader, loader_generator
from spp_cls.data.make_shards import ConversionError
from spp_cls.data.normalize import BatchNormalizer, normalize_nested
from spp_cls.data.sampling import RankSplitSampler, ScheduledBatchSampler, mix_seed
from spp_cls.data.shard_manifest import ShardManifest, load_manifest
from spp_cls.data.shards import ShardStream
from spp_cls.data.skips import SkipTracker
from spp_cls.data.synthetic import ensure_synthetic_dataset
from spp_cls.data.synthetic_shards import ensure_synthetic_shards
from spp_cls.data.transforms import CenterView, TrainView, View
from spp_cls.data.val_labels import list_flat_split
from spp_cls.lightning.position import training_position

log = logging.getLogger(__name__)


class DataSetupError(ValueError):
    """The data cannot be used as configured (layout, labels, class index, shards); the message says why."""


#: names under which earlier versions saved the data module's state in checkpoints (Lightning keys it by the class
#: name): ``ImageFolderDataModule`` until it was renamed for serving shards as well as folders
LEGACY_STATE_KEYS = ("ImageFolderDataModule",)


def saved_datamodule_state(checkpoint: dict[str, Any]) -> Optional[dict[str, Any]]:
    """The data module's state in a checkpoint, under its current name or an earlier one (None if absent)."""
    for key in (ClassificationDataModule.__qualname__, *LEGACY_STATE_KEYS):
        state = checkpoint.get(key)
        if isinstance(state, dict):
            return state
    return None


def adopt_legacy_state(checkpoint: dict[str, Any]) -> None:
    """Put a data module state saved under an earlier class name where Lightning looks for it now, so that a run
    resumed from an older checkpoint still checks its class index against the data."""
    state = saved_datamodule_state(checkpoint)
    if state is not None:
        checkpoint.setdefault(ClassificationDataModule.__qualname__, state)


class ClassificationDataModule(pl.LightningDataModule):
    """Train/val/test splits of an image classification set, from class folders or WebDataset shards
    (``config.format``); the embedded data set is generated first if ``config.synthetic`` is set.

    Args:
        config: the run's ``data.*`` (root, class count, global batch size, pipeline, format, label files,
            caches and limits).
        num_workers: loader processes per device (``config.num_workers`` resolved for this machine; None:
            ``config.num_workers``, which must then be a number).
        seed: the run's seed: the multi-size schedule, the shuffling and the augmentation draw from it.
        test_view: the view of the test loader (a test protocol's); the center crop by default.
        class_index: the class index to use (e.g. saved in a checkpoint) instead of the training classes.
    """

    def __init__(
        self,
        config: DataConfig,
        num_workers: Optional[int] = None,
        seed: int = 0,
        test_view: Optional[View] = None,
        class_index: Optional[Sequence[str]] = None,
    ) -> None:
        super().__init__()
        root = str(config.root)
        self.root = str(Path(root).expanduser()) if "://" not in root and not root.startswith("pipe:") else root
        self.config = config
        self.num_classes = config.num_classes
        self.batch_size = config.batch_size
        self.pin_memory = config.pin_memory
        self.num_workers = int(config.num_workers if num_workers is None else num_workers)
        self.seed = seed
        self.synthetic = config.synthetic
        self.train_split, self.val_split = config.train_split, config.val_split
        self.test_view = test_view or CenterView(config)
        self.train_sizes = tuple(config.train_sizes)
        self.classes: list[str] = list(class_index) if class_index is not None else []
        self.datasets: dict[str, Any] = {}
        self.skips: dict[str, SkipTracker] = {}
        self.normalizer = BatchNormalizer(config)
        self._manifest: Optional[ShardManifest] = None

    # ------------------------------------------------------------------------------------- preparation
    def prepare_data(self) -> None:
        """Generate the embedded data set if it is the source, and list the splits the coming stage reads
        into the file-list cache (see the module docstring for who runs this and why)."""
        if self.synthetic is not None:
            self._prepare_synthetic()
        if self.config.format == "folders" and self._list_cache() is not None:
            try:
                self._list_into_cache()
            except (FileNotFoundError, ValueError) as err:
                raise DataSetupError(f"data.root={self.root}: {err}") from err

    def _prepare_synthetic(self) -> None:
        assert self.synthetic is not None
        if self.config.format == "folders":
            ensure_synthetic_dataset(self.root, self.synthetic)
            return
        if self.config.synthetic_folder is None:
            raise DataSetupError("data.synthetic_folder is required for the embedded data set as shards")
        world, _ = self._world()
        try:
            ensure_synthetic_shards(
                Path(self.config.synthetic_folder).expanduser(),
                Path(self.root),
                self.synthetic,
                self.config.shard_size,
                (self.train_split, self.val_split),
                readers=world * max(1, self.num_workers),
            )
        except ConversionError as err:
            raise DataSetupError(f"data.root={self.root}: {err}") from err

    def _list_cache(self) -> Optional[Path]:
        return Path(self.config.list_cache_dir).expanduser() if self.config.list_cache_dir else None

    def _stage(self) -> str:
        """The stage the trainer is preparing for (``fit`` without a trainer, as in a plain script)."""
        state = getattr(self.trainer, "state", None)
        fn = getattr(state, "fn", None)
        return str(getattr(fn, "value", fn)) if fn is not None else "fit"

    def _list_into_cache(self) -> None:
        """List every split the stage reads (as its own classes: ``setup`` checks them against the class
        index) into the cache; a current cache is left as it is."""
        cache = self._list_cache()
        stage = self._stage()
        splits = (
            [self.train_split, self.val_split]
            if stage == "fit"
            else [self.val_split]
            if stage in ("validate", "test")
            else []
        )
        for split in splits:
            split_dir = Path(self.root) / split
            if split == self.val_split and self.config.val_labels:
                list_flat_names(split_dir, cache)
            else:
                list_class_folder_files(split_dir, list_classes(split_dir), cache)

    def _world(self) -> tuple[int, int]:
        if self.trainer is None:
            return 1, 0
        return self.trainer.world_size, self.trainer.global_rank

    def per_device_batch_size(self) -> int:
        world, _ = self._world()
        if self.batch_size % world:
            raise ValueError(
                f"data.batch_size={self.batch_size} is the global batch and must divide evenly over "
                f"{world} processes (devices x nodes)"
            )
        return self.batch_size // world

    def _epoch(self) -> int:
        if self.trainer is None:
            return 0
        return self.trainer.fit_loop.epoch_progress.current.processed  # type: ignore[attr-defined]  # see position.py

    def _position(self) -> tuple[int, int]:
        return training_position(self.trainer) if self.trainer is not None else (0, 0)

    # -------------------------------------------------------------------------------------------- setup
    def _resolve_classes(self, found: list[str], where: str) -> None:
        if not self.classes:
            self.classes = list(found)
        else:
            compare_classes(self.classes, list(found), "the class index", where)
        if len(self.classes) != self.num_classes:
            raise ValueError(f"{where} has {len(self.classes)} classes but data.num_classes={self.num_classes}")

    def _folder_split(self, split: str) -> list[tuple[str, int]]:
        split_dir = Path(self.root) / split
        cache = self._list_cache()
        if split == self.val_split and self.config.val_labels:
            return list_flat_split(
                split_dir, Path(self.config.val_labels).expanduser(), self.classes, self.config.val_label_map, cache
            )
        compare_classes(self.classes, list_classes(split_dir), "the class index", str(split_dir))
        return list_class_folder_files(split_dir, self.classes, cache)

    def _folder_dataset(self, split: str, view: View) -> SkippingImageFolder:
        return SkippingImageFolder(
            Path(self.root) / split,
            view,
            size=self.config.crop_size,
            classes=self.classes,
            samples=self._folder_split(split),
            max_pixels=self.config.max_pixels,
            encoded=self._decodes_on_device(view),
        )

    def _shard_stream(self, split: str, view: View, train: bool) -> ShardStream:
        assert self._manifest is not None
        world, rank = self._world()
        return ShardStream(
            self._manifest.split(split),
            view,
            self.per_device_batch_size(),
            train=train,
            sizes=self.train_sizes,
            schedule=self.config.size_schedule,
            seed=self.seed,
            eval_size=self.config.crop_size,
            world_size=world,
            rank=rank,
            num_workers=self.num_workers,
            shuffle_buffer=self.config.shuffle_buffer,
            max_pixels=self.config.max_pixels,
            allow_pipe=self.config.allow_pipe,
            encoded=self._decodes_on_device(view),
        )

    def _decodes_on_device(self, view: View) -> bool:
        """Whether this view's JPEGs travel encoded, to be decoded where the batch goes (data.decode_device)."""
        return self.config.decode_device != "cpu" and plannable(view)

    def setup(self, stage: Optional[str] = None) -> None:
        device = self.trainer.strategy.root_device.type if self.trainer is not None else None
        if self.config.decode_device == "cuda" and device not in (None, "cuda"):
            raise DataSetupError(
                f"data.decode_device=cuda decodes JPEGs on the device the batches go to, but this run's device is "
                f"{device}: train on a GPU (trainer=gpu) or set data.decode_device=cpu"
            )
        try:
            self._setup(stage)
        except (FileNotFoundError, ValueError) as err:
            raise DataSetupError(f"data.root={self.root}: {err}") from err
        if stage in (None, "fit") and self.trainer is not None and self.trainer.is_global_zero:
            write_class_index(self.trainer.default_root_dir, self.classes)

    def _setup(self, stage: Optional[str]) -> None:
        fitting = stage in (None, "fit")
        if self.config.format == "shards":
            self._manifest = load_manifest(self.root)
            self._resolve_classes(list(self._manifest.classes), f"{self.root}/manifest.json")
        else:
            train_dir = Path(self.root) / self.train_split
            if fitting or not self.classes:
                self._resolve_classes(list_classes(train_dir), str(train_dir))
        views: dict[str, View] = {
            "train": TrainView(self.config),
            "val": CenterView(self.config),
            "test": self.test_view,
        }
        wanted = {"train": fitting, "val": stage in (None, "fit", "validate"), "test": stage in (None, "test")}
        for name, needed in wanted.items():
            if not needed:
                continue
            split = self.train_split if name == "train" else self.val_split
            if self.config.format == "shards":
                self.datasets[name] = self._shard_stream(split, views[name], train=name == "train")
            else:
                self.datasets[name] = self._folder_dataset(split, views[name])
                if len(self.datasets[name]) == 0:
                    raise ValueError(f"the {name} split under {self.root} has no images")
        log.info("data: %s", ", ".join(f"{k} {self.split_size(k)} images" for k in self.datasets))

    def split_size(self, name: str) -> int:
        """Images of a split (all ranks together), from the file list or the shard manifest."""
        dataset = self.datasets[name]
        return dataset.split.samples if isinstance(dataset, ShardStream) else len(dataset)

    # ------------------------------------------------------------------------------------------ loaders
    def _pin(self) -> bool:
        if self.pin_memory is not None:
            return self.pin_memory
        return self.trainer is not None and self.trainer.strategy.root_device.type == "cuda"

    def _loader(self, name: str) -> DataLoader:
        dataset = self.datasets[name]
        world, rank = self._world()
        common: dict[str, Any] = dict(
            num_workers=self.num_workers,
            pin_memory=self._pin(),
            epoch_fn=self._epoch,
            generator=loader_generator(mix_seed("loader", self.seed, name, rank)),
        )
        if isinstance(dataset, ShardStream):
            expected = len(dataset) * dataset.batch_size if name == "train" else self.split_size(name) // world
            loader = EpochAwareDataLoader(dataset, batch_size=None, persistent_workers=False, **common)
        elif name == "train":
            sampler = ScheduledBatchSampler(
                dataset,
                self.per_device_batch_size(),
                self.train_sizes,
                self.config.size_schedule,
                self.seed,
                num_replicas=world,
                rank=rank,
            )
            expected = len(sampler) * sampler.batch_size
            loader = ResumableDataLoader(
                dataset,
                batch_sampler=sampler,
                collate_fn=collate_skipping,
                persistent_workers=self.num_workers > 0,
                position_fn=self._position,
                **common,
            )
        else:
            split_sampler = RankSplitSampler(
                len(dataset), world, rank, self._evaluation_order(name, dataset), self._limited_test_images(name)
            )
            expected = len(split_sampler)
            loader = EpochAwareDataLoader(
                dataset,
                batch_size=self.per_device_batch_size(),
                sampler=split_sampler,
                collate_fn=collate_skipping,
                persistent_workers=self.num_workers > 0,
                **common,
            )
        self.skips[name] = SkipTracker(name, max(1, expected), self.config.max_skip_fraction, deferred=world > 1)
        return loader

    def _evaluation_order(self, name: str, dataset: Any) -> Optional[Callable[[int], Any]]:
        """The order of a test loader whose view makes whole images of many sizes (the view's ``order_key``,
        from each file's header: this rank's share only, a few kilobytes a file): batches of one size, in place
        of one forward per image. Files whose header does not read come first (decoding then skips them). Shards
        are read in their stored order."""
        order_key = getattr(self.test_view, "order_key", None)
        if name != "test" or order_key is None or not isinstance(dataset, SkippingImageFolder):
            return None

        def key(index: int) -> tuple[int, int]:
            size = dataset.header_size(index)
            return order_key(*size) if size is not None else (0, 0)

        return key

    def _limited_test_images(self, name: str) -> Optional[int]:
        """The images per process that ``trainer.limit_test_batches`` lets a test read (None: all of them): only
        those are reordered, so that a limited test reads the same images in every protocol."""
        limit = getattr(self.trainer, "limit_test_batches", None) if name == "test" else None
        if limit is None or (isinstance(limit, float) and limit >= 1.0):
            return None
        world, rank = self._world()
        batch = self.per_device_batch_size()
        if isinstance(limit, int):
            return limit * batch
        batches = -(-len(range(rank, self.split_size(name), world)) // batch)
        return int(batches * limit) * batch  # Lightning's count of batches; sorting fewer would still be safe

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    # ------------------------------------------------------------------------------- batches on device
    def _current_split(self) -> Optional[str]:
        trainer = self.trainer
        if trainer is None or trainer.sanity_checking:
            return None
        if trainer.training:
            return "train"
        if trainer.validating:
            return "val"
        return "test" if trainer.testing else None

    def on_before_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        split = self._current_split()
        if split in self.skips:
            self.skips[split].update(batch)  # reads the skip count: on the host it costs no device sync
        return batch

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        if "encoded" in batch:
            self._decode_on_device(batch)
        if batch.get("image") is not None:
            batch["image"] = normalize_nested(self.normalizer, batch["image"], batch.pop("lighting", None))
        return batch

    def _decode_on_device(self, batch: dict[str, Any]) -> None:
        """Decode an encoded batch where its labels are (device_decode.py); files no decoder can read leave the
        batch and join its skip count (the Lightning module logs ``skipped``, the tracker keeps the books)."""
        device = batch["target"].device
        images, kept, failed = decode_views(batch, device, self.config.interpolation, self.config.max_pixels)
        for key in ENCODED_FIELDS:
            batch.pop(key, None)
        batch["image"] = images
        if not failed:
            return
        split = self._current_split()
        if split in self.skips:
            self.skips[split].update({"skipped": len(failed), "skipped_paths": failed})
        batch["skipped"] = batch["skipped"] + len(failed)
        index = torch.tensor(kept, dtype=torch.long).to(device, non_blocking=True)
        for key in ("target", "lighting", "index"):
            if batch.get(key) is not None:
                batch[key] = batch[key].index_select(0, index) if kept else None

    def end_epoch_report(self, split: str) -> Optional[str]:
        """This process's skip report for the epoch that just ended (None if nothing was skipped)."""
        return self.skips[split].end_epoch() if split in self.skips else None

    def skip_totals(self) -> dict[str, int]:
        totals = {f"{name}_skipped": t.total_skipped for name, t in self.skips.items()}
        totals.update(
            {
                f"{name}_skipped_shards": t.total_shards_skipped
                for name, t in self.skips.items()
                if t.total_shards_skipped
            }
        )
        return totals

    def epoch_state(self) -> dict[str, Any]:
        """This process's skip counts of the training epoch so far (for a checkpoint taken inside the epoch)."""
        tracker = self.skips.get("train")
        if tracker is None:
            return {}
        return {
            "epoch_skipped": tracker.epoch_skipped,
            "total_skipped": tracker.total_skipped,
            "total_shards_skipped": tracker.total_shards_skipped,
            "first_paths": list(tracker.first_paths),
            "shard_errors": list(tracker.shard_errors),
        }

    def load_epoch_state(self, state: dict[str, Any]) -> None:
        tracker = self.skips.get("train")
        if tracker is not None and state:
            tracker.epoch_skipped, tracker.total_skipped = state["epoch_skipped"], state["total_skipped"]
            tracker.total_shards_skipped = state["total_shards_skipped"]
            tracker.first_paths, tracker.shard_errors = list(state["first_paths"]), list(state["shard_errors"])

    def state_dict(self) -> dict[str, Any]:
        """Saved in every checkpoint: the class index, so evaluation can check it against its data."""
        return {"classes": list(self.classes)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = list(state_dict.get("classes", []))
        if saved and self.classes:
            compare_classes(saved, self.classes, "the checkpoint's class index", "the data's classes")
        elif saved:
            self.classes = saved
