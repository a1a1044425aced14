"""The Lightning module under ``precision=bf16-mixed`` on a CPU (autocast, as on a GPU): logits and top-k
errors in float32, and every test protocol scoring in float32."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from spp_cls.evaluation.protocols import build_protocol
from spp_cls.lightning import SppClassifier
from tests.evaluation.test_precision import OPTIONS, SETTINGS, SIZES, normalised_batch
from tests.helpers import STEP_OPTIM as OPTIM

MODEL = dict(arch="zf5", spp=True, width=0.125, fc_dim=32, dropout=0.0)
CLASSES = 5


def module() -> SppClassifier:
    torch.manual_seed(0)
    return SppClassifier(model=MODEL, optim=OPTIM, num_classes=CLASSES, input_size=64, lr=0.05)


def bf16_trainer(tmp_path: Path) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        devices=1,
        precision="bf16-mixed",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )


def test_top1_error_comes_from_float32_logits(tmp_path: Path) -> None:
    """fc8 outputs 4 + (0, 0, 0, 0, 0.01) for every image: in bfloat16 (spacing 1/32 at 4) the five logits are one
    value and top-1 falls to the tie-break (a lower class, here); in float32 class 4 wins. The target is class 4."""
    m = module()
    with torch.no_grad():
        m.model.fc8.weight.zero_()
        m.model.fc8.bias.copy_(torch.tensor([4.0, 4.0, 4.0, 4.0, 4.01]))
    images = torch.randn(4, 3, 64, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = m.model(images)
    assert logits.dtype == torch.float32 and (logits.argmax(1) == 4).all()
    batch = {"image": images, "target": torch.full((4,), 4), "skipped": torch.tensor(0)}
    validated = bf16_trainer(tmp_path).validate(m, DataLoader([batch], batch_size=None), verbose=False)[0]
    assert validated["val/top1_err"] == 0.0


@pytest.mark.parametrize("name", ["center", "ten_view", "full_flip", "multiview"])
def test_every_protocol_tests_under_bf16_mixed(tmp_path: Path, name: str) -> None:
    """``trainer.test`` with the protocol attached, as evaluate.py and train.py's evaluation run it."""
    m = module()
    m.set_protocol(build_protocol(name, SETTINGS, OPTIONS), keep_scores=True)
    batch: dict[str, Any] = {
        "image": normalised_batch(name),
        "target": torch.arange(len(SIZES)) % CLASSES,
        "skipped": torch.tensor(0),
    }
    tested = bf16_trainer(tmp_path).test(m, DataLoader([batch], batch_size=None), verbose=False)[0]
    assert tested["test/images"] == len(SIZES) and 0.0 <= tested["test/top1_err"] <= 1.0
    assert m.kept_scores is not None
    scores, targets = m.kept_scores[0]
    assert scores.dtype == torch.float32 and scores.shape == (len(SIZES), CLASSES)
    torch.testing.assert_close(scores.sum(-1), torch.ones(len(SIZES)))
