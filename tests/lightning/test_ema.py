"""The EMA callback in a real fit: the average saved in every checkpoint is the EMA of the raw weights after each
optimizer step, whatever the callback order (a checkpoint written before the callback's own update of the step
includes it); the module keeps its raw weights; eval_weights picks either from a checkpoint. Before the first
update (update_starting_at_step) there is no average: validations and checkpoints use the raw weights, reported as
raw, and a run resumed before or after the first update ends as an uninterrupted one."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import pytorch_lightning as pl
import torch

from spp_cls.data.config import DataConfig
from spp_cls.lightning import ClassificationDataModule, SafeCheckpointIO, SppClassifier
from spp_cls.lightning.ema import AVERAGING_STATE, EMA, RAW_STATE, checkpoint_weights, fit_steps, has_ema
from spp_cls.lightning.resume_checkpoint import ResumeCheckpoint
from tests.helpers import STEP_OPTIM, quiet_trainer

DECAY = 0.5  # large steps, so a missed or doubled update shows


class Snapshots(pl.Callback):
    """The raw weights after every optimizer step, and the state_dict of every checkpoint (listed last)."""

    def __init__(self) -> None:
        self.raw: list[dict[str, torch.Tensor]] = []
        self.saved: list[tuple[int, dict[str, torch.Tensor]]] = []

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if trainer.global_step > len(self.raw):
            self.raw.append({k: v.detach().clone() for k, v in pl_module.state_dict().items()})

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        self.saved.append((trainer.global_step, {k: v.clone() for k, v in checkpoint["state_dict"].items()}))


class ValidatedWeights(pl.Callback):
    """The weights each validation of the fit tests (listed after the EMA: it sees what the EMA swapped in)."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, torch.Tensor]] = []

    def on_validation_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if not self.seen or self.seen[-1][0] != trainer.global_step:
            self.seen.append((trainer.global_step, pl_module.state_dict()[KEY].detach().clone()))


class CopyCheckpointAt(pl.Callback):
    """A copy of the resume checkpoint written at each of ``steps`` (listed after ResumeCheckpoint)."""

    def __init__(self, source: Path, target: Path, steps: tuple[int, ...]) -> None:
        self.source, self.target, self.steps = source, target, steps

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_step in self.steps:
            shutil.copy(self.source, self.target / f"step{trainer.global_step}.ckpt")


KEY = "model.fc8.weight"


def fit(
    data: Path,
    root: Path,
    ema_first: bool,
    start: int | None = None,
    max_epochs: int = 1,
    extra: tuple[pl.Callback, ...] = (),
    ckpt_path: Path | None = None,
) -> tuple[SppClassifier, Snapshots, Path]:
    pl.seed_everything(0)
    module = SppClassifier(
        model=dict(arch="zf5", spp=True, width=0.125, fc_dim=32),
        optim=STEP_OPTIM,
        num_classes=4,
        input_size=64,
        lr=0.01,
    )
    config = DataConfig(
        name="tiny", root=str(data), num_classes=4, batch_size=16, resize_size=73, crop_size=64, train_sizes=[64]
    )
    resume = ResumeCheckpoint(root / "checkpoints", every_minutes=1e-9)  # a checkpoint after every step
    ema, spy = EMA(decay=DECAY, update_starting_at_step=start), Snapshots()
    quiet_trainer(
        root,
        max_epochs=max_epochs,
        plugins=[SafeCheckpointIO()],
        callbacks=[ema, resume, spy, *extra] if ema_first else [resume, ema, spy, *extra],
    ).fit(module, datamodule=ClassificationDataModule(config, num_workers=0), ckpt_path=ckpt_path)
    return module, spy, resume.path


def ema_of(snapshots: list[dict[str, torch.Tensor]], key: str) -> torch.Tensor:
    average = snapshots[0][key].float()
    for state in snapshots[1:]:
        average = DECAY * average + (1 - DECAY) * state[key].float()
    return average


@pytest.mark.parametrize("ema_first", [True, False])
def test_every_checkpoint_holds_the_ema_of_the_steps_so_far(tiny_data: Path, tmp_path: Path, ema_first: bool) -> None:
    module, spy, last = fit(tiny_data, tmp_path, ema_first)
    assert [step for step, _ in spy.saved] == [1, 2, 3, 4]  # 4 steps of 16 images, then the end
    key = "model.fc8.weight"
    for step, state in spy.saved:
        assert torch.allclose(state[key], ema_of(spy.raw[:step], key), atol=1e-7), step
    checkpoint = torch.load(last, weights_only=True)
    assert has_ema(checkpoint)
    assert torch.equal(checkpoint[RAW_STATE][key], module.state_dict()[key])  # the module keeps the raw weights
    assert torch.equal(checkpoint[RAW_STATE][key], spy.raw[-1][key])
    assert not torch.equal(checkpoint["state_dict"][key], checkpoint[RAW_STATE][key])


def test_eval_weights_picks_the_average_or_the_raw_weights() -> None:
    average, raw = {"w": torch.zeros(1)}, {"w": torch.ones(1)}
    with_ema = {"state_dict": average, RAW_STATE: raw}
    assert checkpoint_weights(with_ema, "ema") == (average, "ema")
    assert checkpoint_weights(with_ema, "raw") == (raw, "raw")
    plain = {"state_dict": raw}
    assert checkpoint_weights(plain, "ema") == (raw, "raw") == checkpoint_weights(plain, "raw")
    with pytest.raises(ValueError, match="eval_weights"):
        checkpoint_weights(plain, "swa")
    with pytest.raises(ValueError, match="decay"):
        EMA(decay=1.0)


@pytest.mark.parametrize("ema_first", [True, False])
def test_before_the_first_update_validations_and_checkpoints_use_the_raw_weights(
    tiny_data: Path, tmp_path: Path, ema_first: bool
) -> None:
    # 2 epochs of 4 steps; the first update after step index 5 (global step 6): no average for steps 1-5
    validated = ValidatedWeights()
    _, spy, last = fit(tiny_data, tmp_path, ema_first, start=5, max_epochs=2, extra=(validated,))
    assert len(spy.raw) == 8
    for step, state in spy.saved:
        expected = spy.raw[step - 1][KEY] if step <= 5 else ema_of(spy.raw[5:step], KEY)
        assert torch.allclose(state[KEY], expected, atol=1e-7), step
    # the first epoch's validation (step 4, no update yet) tests the raw weights, the second (step 8) the EMA
    assert [step for step, _ in validated.seen] == [4, 8]
    assert torch.equal(validated.seen[0][1], spy.raw[3][KEY])
    assert torch.allclose(validated.seen[1][1], ema_of(spy.raw[5:8], KEY), atol=1e-7)
    assert not torch.equal(validated.seen[1][1], spy.raw[7][KEY])
    final = torch.load(last, weights_only=True)
    assert int(final[AVERAGING_STATE]["n_averaged"]) == 3
    assert checkpoint_weights(final, "ema") == (final["state_dict"], "ema")


def test_an_update_start_never_reached_leaves_the_raw_weights_reported_as_raw(
    tiny_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    validated = ValidatedWeights()
    with caplog.at_level(logging.INFO, logger="spp_cls.lightning.ema"):
        module, spy, last = fit(tiny_data, tmp_path, True, start=100, extra=(validated,))
    for step, state in spy.saved:
        assert torch.equal(state[KEY], spy.raw[step - 1][KEY]), step
    assert [step for step, _ in validated.seen] == [4]
    assert torch.equal(validated.seen[0][1], spy.raw[3][KEY])
    checkpoint = torch.load(last, weights_only=True)
    assert has_ema(checkpoint) and int(checkpoint[AVERAGING_STATE]["n_averaged"]) == 0
    assert torch.equal(checkpoint["state_dict"][KEY], module.state_dict()[KEY])  # predict and export read this
    for weights in ("ema", "raw"):
        state, which = checkpoint_weights(checkpoint, weights)
        assert which == "raw" and torch.equal(state[KEY], module.state_dict()[KEY])
    assert "validating the raw weights" in caplog.text
    assert "update_starting_at_step=100 was not reached" in caplog.text
    messages = [record.getMessage() for record in caplog.records]
    said_at_start = next(i for i, m in enumerate(messages) if "update_starting_at_step=100 is at or beyond" in m)
    assert said_at_start < next(i for i, m in enumerate(messages) if "validating the raw weights" in m)


def test_a_checkpoint_holding_the_setup_copy_reports_its_raw_weights() -> None:
    # a checkpoint written before this was fixed: state_dict is the average model's untouched setup copy
    initial, raw = {"w": torch.zeros(1)}, {"w": torch.ones(1)}
    checkpoint = {"state_dict": initial, RAW_STATE: raw, AVERAGING_STATE: {"n_averaged": torch.tensor(0)}}
    assert checkpoint_weights(checkpoint, "ema") == (raw, "raw")
    checkpoint[AVERAGING_STATE]["n_averaged"] = torch.tensor(1)
    assert checkpoint_weights(checkpoint, "ema") == (initial, "ema")


def test_a_run_resumed_before_or_after_the_first_update_ends_as_an_uninterrupted_one(
    tiny_data: Path, tmp_path: Path
) -> None:
    copies = tmp_path / "copies"
    copies.mkdir()
    _, _, theirs_path = fit(
        tiny_data,
        tmp_path / "whole",
        True,
        start=5,
        max_epochs=2,
        extra=(CopyCheckpointAt(tmp_path / "whole" / "checkpoints" / "last.ckpt", copies, (2, 6)),),
    )
    theirs = torch.load(theirs_path, weights_only=True)
    for step in (2, 6):  # before the first update (step 6) and right at it
        _, _, ours_path = fit(
            tiny_data, tmp_path / f"from{step}", True, start=5, max_epochs=2, ckpt_path=copies / f"step{step}.ckpt"
        )
        ours = torch.load(ours_path, weights_only=True)
        assert ours["global_step"] == theirs["global_step"] == 8
        for part in ("state_dict", RAW_STATE, AVERAGING_STATE):
            assert ours[part].keys() == theirs[part].keys()
            for key, tensor in theirs[part].items():
                assert torch.equal(ours[part][key], tensor), (step, part, key)


@pytest.mark.parametrize(
    ("max_epochs", "max_steps", "expected"),
    [(3, -1, 30), (3, 12, 12), (3, 100, 30), (-1, 50, 50), (-1, -1, None)],
)
def test_the_steps_a_fit_will_take(max_epochs: int, max_steps: int, expected: int | None) -> None:
    """What the start-of-fit warning compares ``update_starting_at_step`` with (the module's count, which the
    cosine schedule uses too): endless epochs (-1) are not counted as a negative number of steps, and
    ``trainer.max_steps`` cuts the epochs' count."""
    trainer = SimpleNamespace(max_epochs=max_epochs, max_steps=max_steps)
    module = SimpleNamespace(trainer=trainer, optimizer_steps_per_epoch=lambda: 10)
    module.fit_optimizer_steps = lambda: SppClassifier.fit_optimizer_steps(module)  # type: ignore[arg-type]
    assert fit_steps(trainer, module) == expected  # type: ignore[arg-type]
    assert fit_steps(trainer, SimpleNamespace()) == (max_steps if max_steps >= 0 else None)  # type: ignore[arg-type]
