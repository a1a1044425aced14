"""A tiny trained-looking SPP checkpoint (with its run's data settings and class index, as train.py writes them),
its ONNX export, a no-SPP one and its fixed-size ONNX export, and generated images of several sizes with one
unreadable file among them."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from spp_cls.checkpointing import save_atomic
from spp_cls.data.config import DataConfig
from spp_cls.data.decode import decode_rgb
from spp_cls.data.normalize import BatchNormalizer
from spp_cls.data.transforms import CenterView
from spp_cls.export import save_export
from spp_cls.export.checkpoint import load_trained_model
from spp_cls.lightning import SppClassifier

CROP, RESIZE = 64, 73
CLASSES = ["n01440764", "n01443537", "00_disk", "01_ring"]  # two ImageNet wnids (tench, goldfish), two others
SIZES = [(120, 90), (90, 120), (75, 75), (160, 97), (200, 150)]  # (width, height)


def image_features(module: SppClassifier, paths: list[Path]) -> torch.Tensor:
    """fc7 features of the images' center views (the data layer's own decoding, view and normalisation)."""
    settings = DataConfig(name="tiny", root="", num_classes=len(CLASSES), crop_size=CROP, resize_size=RESIZE)
    view = CenterView(settings)
    crops = torch.stack([view(decode_rgb(p.read_bytes()), CROP)["image"] for p in paths])
    with torch.no_grad():
        return module.model.forward_head(module.model.features(BatchNormalizer(settings)(crops)), pre_logits=True)


def write_checkpoint(path: Path, templates: list[Path], spp: bool = True) -> SppClassifier:
    """What a training checkpoint holds for prediction: weights, hyper-parameters with the run config's data
    section, the data module's class index. Class k's fc8 row is image k's centred features (scaled), so that
    the images get different classes, far apart (no near ties that float differences could flip)."""
    torch.manual_seed(0)
    model = dict(arch="zf5", spp=spp, width=0.125, fc_dim=16)
    module = SppClassifier(model=model, optim={}, num_classes=len(CLASSES), input_size=CROP, lr=0.1).eval()
    features = image_features(module, templates)
    with torch.no_grad():
        centred = F.normalize(features - features.mean(0), dim=1) * 20.0
        module.model.fc8.weight.copy_(centred)
        module.model.fc8.bias.copy_(-centred @ features.mean(0))
    hparams = dict(module.hparams)
    data = {"name": "tiny", "root": "/elsewhere", "num_classes": len(CLASSES), "crop_size": CROP, "resize_size": RESIZE}
    hparams["run_config"] = {"data": data, "protocol": {"multiview": {"scales": [64, 73, 90]}}}
    state = {"classes": CLASSES}
    save_atomic(
        {"state_dict": module.state_dict(), "hyper_parameters": hparams, "ClassificationDataModule": state}, path
    )
    return module


@pytest.fixture(scope="package")
def models(tmp_path_factory: pytest.TempPathFactory, images: Path) -> dict[str, Path]:
    """An SPP checkpoint (``ckpt``) and a no-SPP one (``fixed``), both in a second or two."""
    folder = tmp_path_factory.mktemp("models")
    templates = [images / name for name in ("img0.jpg", "img1.png", "img2.jpg", "img3.jpg")]
    write_checkpoint(folder / "spp.ckpt", templates)
    write_checkpoint(folder / "fixed.ckpt", templates, spp=False)
    return {"ckpt": folder / "spp.ckpt", "fixed": folder / "fixed.ckpt"}


@pytest.fixture(scope="package")
def onnx_model(models: dict[str, Path]) -> Path:
    """The SPP checkpoint exported to ONNX with dynamic height and width, as ``python -m spp_cls.export
    --dynamic`` writes it (the dynamo export: over ten seconds on a 2-core CPU)."""
    model, _ = load_trained_model(models["ckpt"])
    # the exporter prints its progress; kept out of the output of a test that asks for this fixture late
    with contextlib.redirect_stdout(io.StringIO()):
        return save_export(model, models["ckpt"].with_suffix(".onnx"), CROP, CROP, dynamic=True)


@pytest.fixture(scope="package")
def fixed_onnx(models: dict[str, Path]) -> Path:
    """The no-SPP checkpoint exported to ONNX at its one input size (CROP x CROP), as ``python -m spp_cls.export``
    writes it without ``--dynamic`` (a few seconds)."""
    model, _ = load_trained_model(models["fixed"])
    with contextlib.redirect_stdout(io.StringIO()):
        return save_export(model, models["fixed"].with_suffix(".onnx"), CROP, CROP, dynamic=False)


@pytest.fixture(scope="package")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five JPEG/PNG images of different sizes and contents in a folder (one in a subfolder), and a broken file."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i, (width, height) in enumerate(SIZES):
        base = rng.integers(0, 256, size=3)
        pixels = np.clip(base + rng.normal(0, 40 * i, size=(height, width, 3)), 0, 255).astype(np.uint8)
        target = folder / ("sub" if i == 4 else "") / f"img{i}.{'png' if i == 1 else 'jpg'}"
        target.parent.mkdir(exist_ok=True)
        Image.fromarray(pixels).save(target)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return folder
