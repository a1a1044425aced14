"""The data module: global batch over ranks, multi-size batches that every rank and worker agrees on,
device-side normalisation, the skip threshold, class-index checks, synthetic generation, listing once per
start, and setup at ImageNet's scale."""

from __future__ import annotations

import os
import random
import shutil
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from spp_cls.data import folder, val_labels
from spp_cls.data.config import DataConfig
from spp_cls.data.skips import DataQualityError
from spp_cls.data.synthetic import SyntheticSpec, is_complete
from spp_cls.evaluation.protocols import ScalesView
from spp_cls.lightning import ClassificationDataModule
from spp_cls.lightning.datamodule import DataSetupError, saved_datamodule_state
from spp_cls.lightning.module import SppClassifier
from tests.data import bad_images
from tests.data.imagenet_tree import Tree, make_tree
from tests.data.test_val_labels import NoScanList


def fake_trainer(world: int = 1, rank: int = 0, epoch: int = 0, **state: bool) -> SimpleNamespace:
    """The parts of a Trainer the data module reads."""
    progress = SimpleNamespace(current=SimpleNamespace(processed=epoch))
    flags = dict(sanity_checking=False, training=False, validating=False, testing=False) | state
    return SimpleNamespace(
        world_size=world,
        global_rank=rank,
        is_global_zero=rank == 0,
        default_root_dir="/nonexistent",
        strategy=SimpleNamespace(root_device=SimpleNamespace(type="cpu")),
        fit_loop=SimpleNamespace(epoch_progress=progress),
        **flags,
    )


def data_config(root: Path, **settings: Any) -> DataConfig:
    """``data.*`` of the tests: 4 classes at 64 px (short side 73), one training size."""
    values: dict[str, Any] = dict(
        name="tiny", root=str(root), num_classes=4, batch_size=8, resize_size=73, crop_size=64, train_sizes=[64]
    )
    return DataConfig(**(values | settings))


def make(
    root: Path,
    batch_size: int = 8,
    workers: int = 0,
    seed: int = 0,
    class_index: list[str] | None = None,
    **settings: Any,
) -> ClassificationDataModule:
    return ClassificationDataModule(
        data_config(root, batch_size=batch_size, **settings), num_workers=workers, seed=seed, class_index=class_index
    )


def epoch_batches(dm: ClassificationDataModule, world: int, rank: int, epoch: int) -> list[dict[str, Any]]:
    dm.trainer = fake_trainer(world, rank, epoch)
    return list(dm.train_dataloader())


def test_global_batch_is_split_over_processes(tiny_data: Path) -> None:
    dm = make(tiny_data, batch_size=12)
    dm.trainer = fake_trainer(world=3)
    assert dm.per_device_batch_size() == 4
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 64, 64) and batch["image"].dtype == torch.uint8
    assert batch["skipped"].item() == 0 and batch["lighting"].shape == (4, 3)
    dm.trainer.world_size = 5
    with pytest.raises(ValueError, match="batch_size=12 is the global batch.*5 processes"):
        dm.per_device_batch_size()


def test_multi_size_batches_agree_across_ranks_and_workers(tiny_data: Path) -> None:
    """2 ranks x 2 persistent workers: one size per batch, per the epoch; the same batches when re-run."""
    sizes = {}
    for rank in (0, 1):
        dm = make(tiny_data, batch_size=8, workers=2, train_sizes=[64, 48], seed=3)
        dm.trainer = fake_trainer(2, rank)
        dm.setup("fit")
        loader_sizes = []
        for epoch in range(3):
            batches = epoch_batches(dm, 2, rank, epoch)
            assert len(batches) == 8  # 64 images / 2 ranks / 4 per rank
            loader_sizes.append({b["image"].shape[-1] for b in batches})
        sizes[rank] = loader_sizes
        again = epoch_batches(dm, 2, rank, 1)
        assert [b["target"].tolist() for b in again] == [b["target"].tolist() for b in epoch_batches(dm, 2, rank, 1)]
    assert sizes[0] == sizes[1] == [{64}, {48}, {64}]


def test_auto_augment_gives_the_same_batches_in_any_worker_layout_and_after_a_restart(tiny_data: Path) -> None:
    """data.auto_augment draws from each sample's own generator: exact resume holds with it."""
    images = []
    for workers in (0, 2):
        dm = make(tiny_data, batch_size=8, workers=workers, auto_augment="trivialaugment")
        dm.setup("fit")
        images.append([b["image"] for b in epoch_batches(dm, 1, 0, epoch=1)])
    assert all(torch.equal(a, b) for a, b in zip(*images))
    plain = make(tiny_data, batch_size=8)
    plain.setup("fit")
    assert not torch.equal(epoch_batches(plain, 1, 0, epoch=1)[0]["image"], images[0][0])


def test_first_epoch_after_a_restart_uses_that_epochs_order(tiny_data: Path) -> None:
    """Lightning creates the first iterator before it calls set_epoch; the loader asks the trainer instead."""
    dm = make(tiny_data, batch_size=8, train_sizes=[64, 48])
    dm.trainer = fake_trainer()
    dm.setup("fit")
    reference = [b["target"].tolist() for b in epoch_batches(dm, 1, 0, 5)]
    fresh = make(tiny_data, batch_size=8, train_sizes=[64, 48])
    fresh.trainer = fake_trainer(epoch=5)  # restored at epoch 5; no set_epoch call before iterating
    fresh.setup("fit")
    batches = list(fresh.train_dataloader())
    assert [b["target"].tolist() for b in batches] == reference and batches[0]["image"].shape[-1] == 48


@pytest.mark.parametrize("rank", [0, 1])
def test_whole_image_protocols_test_images_ordered_by_size(tiny_data: Path, rank: int) -> None:
    """The full-image view's batches hold one or two sizes (each size is a forward of its own), every image of
    the rank's share once, each with its file position; the center crop keeps the file order."""
    config = data_config(tiny_data)
    dm = ClassificationDataModule(config, num_workers=0, test_view=ScalesView(config, (73,), as_list=False))
    dm.trainer = fake_trainer(world=2, rank=rank)
    dm.setup("test")
    batches = list(dm.test_dataloader())
    shapes = [tuple(image.shape[-2:]) for b in batches for image in b["image"]]
    indices = [i for b in batches for i in b["index"].tolist()]
    assert sorted(indices) == list(range(rank, 32, 2)) and len(set(shapes)) > 1
    assert shapes == sorted(shapes)
    dm.trainer.limit_test_batches = 1  # a limited test: the same images as in file order, reordered
    first = next(iter(dm.test_dataloader()))["index"].tolist()
    assert sorted(first) == list(range(rank, 32, 2))[:4]  # the global batch of 8 over 2 processes
    center = make(tiny_data)
    center.trainer = fake_trainer(world=2, rank=rank)
    center.setup("test")
    assert [i for b in center.test_dataloader() for i in b["index"].tolist()] == list(range(rank, 32, 2))


def test_batches_are_normalised_on_transfer(tiny_data: Path) -> None:
    dm = make(tiny_data, batch_size=4)
    dm.trainer = fake_trainer(training=True)
    dm.setup("fit")
    batch = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert batch["image"].dtype == torch.float32 and "lighting" not in batch
    assert -3 < batch["image"].mean().item() < 3


def test_device_decoding_delivers_the_cpu_paths_batches(tiny_data: Path) -> None:
    batches = []
    for device in ("cpu", "cuda"):  # cuda: bytes + plans from the workers, decoded where the batch is (here: CPU)
        dm = make(tiny_data, batch_size=4, reduced_decode=False, decode_device=device, pin_memory=False)
        dm.trainer = fake_trainer(training=True)
        dm.setup("fit") if device == "cpu" else dm._setup("fit")  # setup() itself refuses a CPU run, tested below
        raw = next(iter(dm.train_dataloader()))
        assert ("encoded" in raw) == (device == "cuda")
        batches.append(dm.on_after_batch_transfer(dm.on_before_batch_transfer(raw, 0), 0))
    cpu, device = batches
    assert torch.equal(cpu["image"], device["image"]) and torch.equal(cpu["target"], device["target"])
    assert not any(key in device for key in ("encoded", "ready", "box"))


def test_decoding_on_the_gpu_is_refused_for_a_cpu_run_at_setup(tiny_data: Path) -> None:
    dm = make(tiny_data, decode_device="cuda")
    dm.trainer = fake_trainer(training=True)
    with pytest.raises(DataSetupError, match="data.decode_device=cuda .* this run's device is cpu"):
        dm.setup("fit")


@pytest.mark.parametrize("decode_device", ["cpu", "cuda"])
def test_skip_threshold_names_the_fraction_and_files(tiny_data: Path, tmp_path: Path, decode_device: str) -> None:
    root = tmp_path / "data"
    shutil.copytree(tiny_data, root)
    bad = bad_images.write(root / "train" / "00_disk", bad_images.unreadable())
    bad_images.write(root / "train" / "01_square", bad_images.convertible())

    def run_epoch(max_fraction: float) -> ClassificationDataModule:
        dm = make(root, batch_size=74, max_skip_fraction=max_fraction, decode_device=decode_device)
        dm.trainer = fake_trainer(training=True)
        dm._setup("fit")  # a CPU stand-in for the GPU: setup() would refuse decode_device=cuda here
        for batch in dm.train_dataloader():
            dm.on_before_batch_transfer(batch, 0)  # counted from the host's copy, before the transfer
            if decode_device == "cuda":
                assert dm.on_after_batch_transfer(batch, 0)["image"].shape[0] == 70  # the rest decodes
        return dm

    dm = run_epoch(0.1)  # 4 of 74 (5.4%) are unreadable: tolerated, counted and named
    assert dm.skip_totals() == {"train_skipped": 4}
    report = dm.end_epoch_report("train")
    assert "skipped 4 unreadable images" in report and all(str(p) in report for p in bad)
    assert dm.end_epoch_report("train") is None  # the next epoch starts from zero
    with pytest.raises(
        DataQualityError, match=r"4 of the 74 train images.*5\.41% > data.max_skip_fraction=0.01.*\.JPEG"
    ):
        run_epoch(0.01)


def test_class_index_is_checked_against_the_checkpoint(tiny_data: Path, tmp_path: Path) -> None:
    dm = make(tiny_data)
    dm.setup("fit")
    assert dm.state_dict() == {"classes": ["00_disk", "01_square", "02_triangle", "03_ring"]}
    other = make(tiny_data, batch_size=4, class_index=["00_disk", "01_square", "02_triangle", "99_blob"])
    with pytest.raises(DataSetupError, match=r"99_blob.*03_ring|03_ring.*99_blob"):
        other.setup("test")
    with pytest.raises(DataSetupError, match="data.num_classes=7"):
        make(tiny_data, batch_size=4, num_classes=7).setup("fit")


def test_prepare_data_generates_the_synthetic_set(tmp_path: Path) -> None:
    spec = SyntheticSpec(num_classes=4, train_per_class=2, val_per_class=1, min_short_side=64, max_short_side=70)
    dm = make(tmp_path / "gen", batch_size=4, synthetic=spec)
    dm.prepare_data()
    assert is_complete(tmp_path / "gen", spec)
    dm.setup("validate")
    assert len(dm.datasets["val"]) == 4


@pytest.mark.parametrize("setting, pinned", [(None, False), (True, True), (False, False)])
def test_pin_memory_follows_the_setting(tiny_data: Path, setting: bool | None, pinned: bool) -> None:
    """null pins only for a GPU (this fake trainer's device is the CPU); true/false decide."""
    dm = make(tiny_data, batch_size=4, pin_memory=setting)
    dm.trainer = fake_trainer(training=True)
    dm.setup("fit")
    assert dm.train_dataloader().pin_memory is pinned


def _count_scans(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every folder listed with ``os.scandir`` from now on."""
    listed: list[str] = []
    real = os.scandir

    def counting(path: str | os.PathLike = ".") -> object:
        listed.append(os.path.normpath(os.fspath(path)))
        return real(path)

    monkeypatch.setattr(os, "scandir", counting)
    return listed


def test_prepare_data_lists_each_split_once_for_every_process(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """prepare_data (a node's first process) lists the splits into the cache; setup in that process and in
    the others (ranks) reads the cache: every class folder is listed once, not once per process."""
    cache = tmp_path / "file-lists"
    listed = _count_scans(monkeypatch)
    first = make(tiny_data, list_cache_dir=str(cache))
    first.prepare_data()
    class_folders = [
        os.path.normpath(tiny_data / split / c) for split in ("train", "val") for c in os.listdir(tiny_data / split)
    ]
    assert sorted(p for p in listed if p in class_folders) == sorted(class_folders)  # each once, by prepare_data
    before = len(listed)
    ranks = [first, make(tiny_data, list_cache_dir=str(cache)), make(tiny_data, list_cache_dir=str(cache))]
    for rank in ranks:
        rank.setup("fit")
        assert len(rank.datasets["train"]) == 64 and len(rank.datasets["val"]) == 32
    assert not [p for p in listed[before:] if p in class_folders]  # setup listed no class folder again

    tester = make(tiny_data, list_cache_dir=str(tmp_path / "for-test"))
    tester.trainer = fake_trainer()
    tester.trainer.state = SimpleNamespace(fn=SimpleNamespace(value="test"))  # trainer.test(): no training split
    before = len(listed)
    tester.prepare_data()
    assert sorted(p for p in listed[before:] if p in class_folders) == [
        p for p in sorted(class_folders) if "/val/" in p
    ]


def test_prepare_data_lists_a_flat_validation_folder_once(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "data"
    shutil.copytree(tiny_data / "train", root / "train")
    (root / "val").mkdir()
    rows = []
    for n, path in enumerate(sorted((tiny_data / "val").rglob("*.jpg"))):
        shutil.copy(path, root / "val" / f"ILSVRC2012_val_{n:08d}.JPEG")
        rows.append(f"ILSVRC2012_val_{n:08d},{path.parent.name} 1 2 3 4")
    labels = tmp_path / "LOC_val_solution.csv"
    labels.write_text("ImageId,PredictionString\n" + "\n".join(rows) + "\n")
    listed = _count_scans(monkeypatch)
    dm = make(root, list_cache_dir=str(tmp_path / "cache"), val_labels=str(labels))
    dm.prepare_data()
    assert listed.count(os.path.normpath(root / "val")) == 1
    for rank in (dm, make(root, list_cache_dir=str(tmp_path / "cache"), val_labels=str(labels))):
        rank.setup("validate")
        assert sorted(rank.datasets["val"].targets) == sorted([0, 1, 2, 3] * 8)
    assert listed.count(os.path.normpath(root / "val")) == 1


@pytest.fixture(scope="module")
def imagenet_tree(tmp_path_factory: pytest.TempPathFactory) -> Tree:
    """ILSVRC-2012's shape in empty files: 1,000 class folders and a flat 50,000-image validation folder
    labelled by a LOC_val_solution.csv (made once for the module)."""
    return make_tree(tmp_path_factory.mktemp("imagenet") / "ILSVRC")


@pytest.mark.slow  # making the 51,000 files of the tree takes most of it
def test_setup_at_imagenet_scale_is_linear_and_labels_right(
    imagenet_tree: Tree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = imagenet_tree
    # any membership test against the list of validation names (one per image: quadratic) fails the test
    real_list = folder.list_flat_names
    monkeypatch.setattr(val_labels, "list_flat_names", lambda *args: NoScanList(real_list(*args)))
    cache = tmp_path / "file-lists"

    def start() -> ClassificationDataModule:
        dm = make(tree.root, num_classes=1000, val_labels=str(tree.labels_file), list_cache_dir=str(cache))
        began = time.monotonic()
        dm.prepare_data()
        dm.setup("fit")
        assert time.monotonic() - began < 600  # a hang guard only; the linear setup takes a small fraction
        return dm

    for dm in (start(), start()):  # the first start lists, the second reads the cache
        assert dm.classes == tree.classes
        train, val = dm.datasets["train"], dm.datasets["val"]
        assert len(train) == sum(len(f) for f in tree.train_files.values()) and len(val) == 50_000
        for path, label in random.Random(0).sample(val.samples, 200):
            assert tree.classes[label] == tree.val_truth[os.path.basename(path)]
        for path, label in train.samples[::37]:
            assert tree.classes[label] == os.path.basename(os.path.dirname(path))
        assert sorted(val.targets) == sorted(list(range(1000)) * 50)


def test_a_checkpoint_from_before_the_rename_still_restores_the_class_index(tiny_data: Path) -> None:
    """Lightning keys the data module's state by its class name; checkpoints written while it was called
    ImageFolderDataModule keep it under that name, which the module moves to the current one on load."""
    classes = ["00_disk", "01_square", "02_triangle", "03_ring"]
    checkpoint: dict[str, Any] = {"ImageFolderDataModule": {"classes": classes}}
    assert saved_datamodule_state(checkpoint) == {"classes": classes}
    SppClassifier(
        model=dict(arch="zf5", spp=True, width=0.125, fc_dim=32), optim={}, num_classes=4, input_size=64, lr=0.01
    ).on_load_checkpoint(checkpoint)
    dm = make(tiny_data)
    dm.load_state_dict(checkpoint[type(dm).__qualname__])
    assert dm.classes == classes
    assert saved_datamodule_state({}) is None
