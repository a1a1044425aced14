"""train.py on an ImageNet-layout tree (wnid class folders, flat validation with a label file), as class
folders and as shards, with multi-size training; and the start-up refusal of multi-size without SPP."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, run_script

WNIDS = ["n01440764", "n01443537", "n01484850", "n01491361"]


@pytest.fixture(scope="module")
def imagenet_tree(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """tiny_data as root/train/<wnid>/*.JPEG plus a flat root/val/ILSVRC2012_val_*.JPEG and LOC_val_solution.csv."""
    root = tmp_path_factory.mktemp("imagenet") / "ilsvrc"
    labels = []
    for folder, wnid in zip(sorted((tiny_data / "train").iterdir()), WNIDS):
        (root / "train" / wnid).mkdir(parents=True)
        for image in sorted(folder.glob("*.jpg")):
            shutil.copy(image, root / "train" / wnid / f"{wnid}_{image.stem}.JPEG")
    (root / "val").mkdir()
    for n, image in enumerate(sorted((tiny_data / "val").rglob("*.jpg")), start=1):
        name = f"ILSVRC2012_val_{n:08d}"
        shutil.copy(image, root / "val" / f"{name}.JPEG")
        labels.append((name, WNIDS[sorted(p.name for p in (tiny_data / "val").iterdir()).index(image.parent.name)]))
    solution = root / "LOC_val_solution.csv"
    with solution.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["ImageId", "PredictionString"])
        writer.writerows([(name, f"{wnid} 0 0 10 10") for name, wnid in labels])
    return root, solution


def _overrides(run_dir: Path, *extra: str) -> list[str]:
    return [
        "trainer=cpu",
        "logger=csv",
        "model.width=0.125",
        "model.fc_dim=32",
        "trainer.enable_progress_bar=false",
        "trainer.log_every_n_steps=1",
        "data.num_classes=4",
        "data.num_workers=0",
        "data.batch_size=16",
        "data.resize_size=73",
        "data.crop_size=64",
        "data.train_sizes=[64,48]",
        "trainer.max_epochs=2",
        f"hydra.run.dir={run_dir}",
        *extra,
    ]


def _input_sizes(run_dir: Path) -> list[float]:
    rows = list(csv.DictReader((run_dir / "csv" / "metrics.csv").open()))
    return [float(r["train/input_size"]) for r in rows if r.get("train/input_size")]


@pytest.mark.slow
def test_class_folders_with_flat_validation_and_multi_size(imagenet_tree: tuple[Path, Path], tmp_path: Path) -> None:
    root, solution = imagenet_tree
    result = run_script(
        "train.py",
        "data=imagenet",
        f"data.root={root}",
        f"data.val_labels={solution}",
        *_overrides(tmp_path / "run"),
        cache=tmp_path / "cache",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["val/images"] == 32 and metrics["train_skipped"] == 0 and metrics["val_skipped"] == 0
    assert (tmp_path / "run" / "classes.txt").read_text().split() == WNIDS
    assert _input_sizes(tmp_path / "run") == [64.0, 48.0]
    assert list((tmp_path / "cache" / "file-lists").glob("train-*.json"))  # the listing is cached


@pytest.mark.slow
def test_shards_of_the_same_tree(imagenet_tree: tuple[Path, Path], tmp_path: Path) -> None:
    root, solution = imagenet_tree
    shards = tmp_path / "shards"
    convert = subprocess.run(
        [
            sys.executable,
            "-m",
            "spp_cls.data.make_shards",
            str(root),
            str(shards),
            "--shard-size",
            "8",
            "--val-labels",
            str(solution),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert convert.returncode == 0, convert.stderr[-3000:]
    result = run_script("train.py", "data=imagenet_wds", f"data.root={shards}", *_overrides(tmp_path / "run"))
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["val/images"] == 32 and metrics["global_step"] == 2 * (64 // 16)
    assert (tmp_path / "run" / "classes.txt").read_text().split() == WNIDS
    assert _input_sizes(tmp_path / "run") == [64.0, 48.0]
    evaluated = run_script(
        "evaluate.py",
        f"ckpt_path={tmp_path}/run/checkpoints/last.ckpt",
        "protocols=[center,full]",
        f"hydra.run.dir={tmp_path}/eval",
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    protocols = json.loads((tmp_path / "eval" / "metrics.json").read_text())["protocols"]
    assert protocols["center"]["images"] == protocols["full"]["images"] == 32  # every shard sample once

    # a validation shard lost, on one of 2 processes only: both finish, the loss counted alike on both
    sorted(shards.glob("val-*.tar"))[-1].unlink()
    lost = run_script(
        "evaluate.py",
        f"ckpt_path={tmp_path}/run/checkpoints/last.ckpt",
        "protocols=[center]",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "data.max_skip_fraction=1.0",
        f"hydra.run.dir={tmp_path}/lost",
    )
    assert lost.returncode == 0, lost.stderr[-3000:]
    center = json.loads((tmp_path / "lost" / "metrics.json").read_text())["protocols"]["center"]
    assert center["skipped_shards"] == 1 and center["images"] == 24 and center["images"] + center["skipped"] == 32


def test_multi_size_without_spp_is_refused_naming_both_keys(tmp_path: Path) -> None:
    result = run_script(
        "train.py", "model.spp=false", "data.train_sizes=[224,180]", f"hydra.run.dir={tmp_path}", cache=tmp_path
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "data.train_sizes=[224, 180]" in result.stderr and "model.spp=false" in result.stderr


def test_too_few_shards_for_the_readers_is_refused_at_start(imagenet_tree: tuple[Path, Path], tmp_path: Path) -> None:
    root, solution = imagenet_tree
    shards = tmp_path / "shards"
    from spp_cls.data.make_shards import ShardConfig, convert

    convert(
        ShardConfig(source=str(root), shard_size=40, val_labels=str(solution)), shards
    )  # 2 train shards, 1 val shard
    # training needs a shard per reader (validation, one per process: its single shard is enough)
    result = run_script(
        "train.py",
        "data=imagenet_wds",
        f"data.root={shards}",
        "data.num_classes=4",
        "data.num_workers=3",
        "data.batch_size=16",
        "trainer=cpu",
        f"hydra.run.dir={tmp_path}/run",
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "train split has 2 shards but 1 processes x 3 loader workers = 3 readers" in result.stderr
