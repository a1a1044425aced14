"""``python -m spp_cls.export``: a training checkpoint to a .pt2 program or an .onnx model that gives the
checkpoint's logits (ONNX Runtime: rtol 1e-4, atol 1e-5), with clear errors for what it cannot export."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort
import pytest
import torch

from spp_cls.checkpointing import save_atomic
from spp_cls.export.__main__ import main
from spp_cls.lightning import SppClassifier

CROP = 64


def write_checkpoint(path: Path, spp: bool) -> SppClassifier:
    """A checkpoint with what train.py's checkpoints hold for the model: weights and hyper-parameters."""
    torch.manual_seed(0)
    model = dict(arch="zf5", spp=spp, width=0.125, fc_dim=16)
    module = SppClassifier(model=model, optim={}, num_classes=3, input_size=CROP, lr=0.1).eval()
    save_atomic({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return module


def test_spp_checkpoint_to_onnx_with_dynamic_sizes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    module = write_checkpoint(tmp_path / "spp.ckpt", spp=True)
    assert main([str(tmp_path / "spp.ckpt"), str(tmp_path / "spp.onnx"), "--dynamic"]) == 0
    assert "height and width >= 47" in capsys.readouterr().out
    session = ort.InferenceSession(str(tmp_path / "spp.onnx"), providers=["CPUExecutionProvider"])
    (images,), (logits,) = session.get_inputs(), session.get_outputs()
    assert (images.name, images.shape, logits.name) == ("images", ["batch", 3, "height", "width"], "logits")
    for shape in [(1, 3, 180, 180), (3, 3, 97, 131)]:
        x = torch.randn(*shape)
        out = torch.from_numpy(session.run(None, {"images": x.numpy()})[0])
        with torch.no_grad():
            torch.testing.assert_close(out, module(x), rtol=1e-4, atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spp.ckpt", "spp.onnx"]  # no temporary left


def test_no_spp_checkpoint_to_pt2_at_its_size(tmp_path: Path) -> None:
    module = write_checkpoint(tmp_path / "fixed.ckpt", spp=False)
    assert main([str(tmp_path / "fixed.ckpt"), str(tmp_path / "fixed.pt2")]) == 0
    program = torch.export.load(tmp_path / "fixed.pt2").module()
    for batch in (1, 4):
        x = torch.randn(batch, 3, CROP, CROP)
        with torch.no_grad():
            torch.testing.assert_close(program(x), module(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "args, words",
    [
        (["--dynamic"], "(no SPP) takes only 64x64 inputs; export it without --dynamic"),
        (["--height", "80"], "built for 64x64 inputs and got 80x64"),
    ],
)
def test_what_a_no_spp_model_cannot_export_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str], words: str
) -> None:
    write_checkpoint(tmp_path / "fixed.ckpt", spp=False)
    assert main([str(tmp_path / "fixed.ckpt"), str(tmp_path / "out.pt2"), *args]) == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "out.pt2").exists()


def test_bad_inputs_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write_checkpoint(tmp_path / "spp.ckpt", spp=True)
    assert main([str(tmp_path / "spp.ckpt"), str(tmp_path / "out.pt2"), "--dynamic", "--height", "40"]) == 2
    assert "sides of at least 47" in capsys.readouterr().err
    save_atomic({"weights": torch.zeros(1)}, tmp_path / "other.ckpt")
    assert main([str(tmp_path / "other.ckpt"), str(tmp_path / "out.onnx")]) == 2
    assert "not a checkpoint written by spp-cls training" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.ckpt"), str(tmp_path / "out.onnx")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path / "spp.ckpt"), str(tmp_path / "out.tflite")])
    assert "OUT must end in one of .pt2, .onnx" in capsys.readouterr().err
