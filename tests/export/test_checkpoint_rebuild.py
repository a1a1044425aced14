"""A checkpoint of a run that started from pretrained weights (``model.pretrained=true`` with
``model.pretrained_file``) is rebuilt from its own weights: export and predict work on a machine without that
weights file, and the network they use has the checkpoint's weights, not the file's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from spp_cls.checkpointing import save_atomic
from spp_cls.export.__main__ import main as export_main
from spp_cls.export.checkpoint import load_trained_model
from spp_cls.lightning import SppClassifier
from spp_cls.models.timm_backbone import build_backbone
from spp_cls.predict.__main__ import main as predict_main

CROP = 64


def write_pretrained_run(folder: Path) -> tuple[Path, Path, SppClassifier]:
    """A narrow resnet18 checkpoint whose run started from a local weights file; the checkpoint's weights are
    changed after that start (as training changes them), so they differ from the file's."""
    torch.manual_seed(0)
    weights = folder / "resnet18_narrow.pth"
    torch.save(build_backbone("resnet18", spp=True, width=0.125).state_dict(), weights)
    model = dict(
        arch="resnet18",
        backbone="resnet18",
        spp=True,
        pyramid=[2, 1],
        width=0.125,
        fc_dim=0,
        dropout=0.0,
        pretrained=True,
        pretrained_file=str(weights),
    )
    module = SppClassifier(model=model, optim={}, num_classes=3, input_size=CROP, lr=0.1).eval()
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.01)  # "trained": no longer the file's weights
    hparams = dict(module.hparams)
    data = {"name": "tiny", "root": "/elsewhere", "num_classes": 3, "crop_size": CROP, "resize_size": 73}
    hparams["run_config"] = {"data": data}
    ckpt = folder / "run.ckpt"
    save_atomic({"state_dict": module.state_dict(), "hyper_parameters": hparams}, ckpt)
    return ckpt, weights, module


def test_a_pretrained_run_is_rebuilt_without_its_weights_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ckpt, weights, trained = write_pretrained_run(tmp_path)
    weights.unlink()  # the run's weights file is not on the machine that exports and predicts

    model, crop = load_trained_model(ckpt)
    assert crop == CROP
    expected = trained.model.state_dict()
    assert all(torch.equal(value, expected[key]) for key, value in model.state_dict().items())

    assert export_main([str(ckpt), str(tmp_path / "run.pt2")]) == 0
    x = torch.randn(2, 3, CROP, CROP)
    with torch.no_grad():
        torch.testing.assert_close(torch.export.load(tmp_path / "run.pt2").module()(x), trained(x))

    image = tmp_path / "a.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(image)
    capsys.readouterr()
    code = predict_main([str(ckpt), str(image), "--workers", "0"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith(f"{image}\t") and "1 images predicted by resnet18_spp" in err
