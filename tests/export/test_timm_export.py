"""``python -m spp_cls.export`` on timm backbone checkpoints, both heads: dynamic batch, height and width in a
.pt2 program and an .onnx model (ONNX Runtime) that give the checkpoint's logits at sizes it was not traced at."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort
import pytest
import torch

from spp_cls.checkpointing import save_atomic
from spp_cls.export.__main__ import main
from spp_cls.lightning import SppClassifier


def write_checkpoint(path: Path, backbone: str, spp: bool) -> SppClassifier:
    torch.manual_seed(0)
    model = dict(arch=backbone, backbone=backbone, spp=spp, pyramid=[3, 2, 1], width=0.125, fc_dim=16, dropout=0.0)
    module = SppClassifier(model=model, optim={}, num_classes=3, input_size=64, lr=0.1).eval()
    save_atomic({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return module


@pytest.mark.parametrize("spp", [True, False])
def test_pt2_with_dynamic_sizes(tmp_path: Path, spp: bool, capsys: pytest.CaptureFixture) -> None:
    module = write_checkpoint(tmp_path / "m.ckpt", "resnet18", spp)
    assert main([str(tmp_path / "m.ckpt"), str(tmp_path / "m.pt2"), "--dynamic"]) == 0
    assert f"resnet18{'_spp' if spp else ''}, input (N, 3, H, W) with any N and height and width >= 33" in (
        capsys.readouterr().out
    )
    program = torch.export.load(tmp_path / "m.pt2").module()
    for shape in [(1, 3, 64, 64), (3, 3, 97, 131), (2, 3, 33, 200)]:
        x = torch.randn(*shape)
        with torch.no_grad():
            torch.testing.assert_close(program(x), module(x), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("backbone,spp", [("resnet18", True), ("convnext_atto", False)])
def test_onnx_with_dynamic_sizes(tmp_path: Path, backbone: str, spp: bool) -> None:
    module = write_checkpoint(tmp_path / "m.ckpt", backbone, spp)
    assert main([str(tmp_path / "m.ckpt"), str(tmp_path / "m.onnx"), "--dynamic"]) == 0
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    for shape in [(1, 3, 96, 96), (3, 3, 97, 131)]:
        x = torch.randn(*shape)
        out = torch.from_numpy(session.run(None, {"images": x.numpy()})[0])
        with torch.no_grad():
            torch.testing.assert_close(out, module(x), rtol=1e-4, atol=1e-5)
