"""The modern recipe killed and resumed (train.py in subprocesses, kill -9 mid-epoch inside a warmup + cosine
schedule, with AdamW, label smoothing, MixUp and CutMix, TrivialAugment, the EMA, gradient accumulation and
multi-size training all on) ends as an uninterrupted run: raw and EMA weights, optimizer, schedule and metrics.
evaluate.py then tests the EMA weights that train.py validated (eval_weights=ema), or the raw ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from spp_cls.checkpointing import load_safe
from spp_cls.lightning.ema import RAW_STATE
from tests.cli.test_resume import resume_point, train_until_killed
from tests.helpers import run_script

# 4 batches of 16 per epoch, 2 per optimizer step (of one input size: sizes change per epoch), 6 steps in all;
# warmup over the first step
RECIPE = (
    "recipe=modern",
    "optim.lr=0.002",
    "optim.base_batch_size=32",
    "optim.warmup_epochs=0.5",
    "optim.mixup_alpha=0.4",
    "optim.cutmix_alpha=1.0",
    "callbacks.ema.decay=0.5",
    "trainer.accumulate_grad_batches=2",
    "data.train_sizes=[64,56]",
    "data.auto_augment=trivialaugment",
)


def train(data: Path, run_dir: Path, *extra: str):
    from tests.cli.test_resume import RUN

    return run_script("train.py", *RUN, *RECIPE, f"data.root={data}", f"hydra.run.dir={run_dir}", *extra)


@pytest.fixture(scope="module")
def uninterrupted(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("recipe")
    result = train(tiny_data, run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


@pytest.mark.slow
def test_the_modern_recipe_killed_mid_epoch_ends_as_an_uninterrupted_run(
    tiny_data: Path, uninterrupted: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    monkeypatch.setattr("tests.cli.test_resume.train", train)  # train_until_killed runs this test's command
    train_until_killed(tiny_data, run, step=3)  # after batch 2 of 4 of the second epoch
    assert resume_point(run) == (1, 3)
    final = train(tiny_data, run)
    assert final.returncode == 0, final.stderr[-3000:]

    ours, theirs = load_safe(run / "checkpoints" / "last.ckpt"), load_safe(uninterrupted / "checkpoints" / "last.ckpt")
    assert ours["global_step"] == theirs["global_step"] == 6
    for part in ("state_dict", RAW_STATE, "averaging_state"):  # the EMA, the raw weights, the EMA's counter
        assert ours[part].keys() == theirs[part].keys()
        for key, tensor in theirs[part].items():
            assert torch.equal(ours[part][key], tensor), (part, key)
    assert not torch.equal(theirs["state_dict"]["model.fc8.weight"], theirs[RAW_STATE]["model.fc8.weight"])
    for a, b in zip(ours["optimizer_states"][0]["state"].values(), theirs["optimizer_states"][0]["state"].values()):
        assert all(torch.equal(a[k], b[k]) for k in ("exp_avg", "exp_avg_sq"))
    assert ours["lr_schedulers"] == theirs["lr_schedulers"]
    assert ours["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(0.0, abs=1e-12)  # cosine's end
    metrics = [json.loads((d / "metrics.json").read_text()) for d in (run, uninterrupted)]
    for m in metrics:
        m.pop("last_checkpoint"), m.pop("best_checkpoint"), m.pop("evaluated_checkpoint")  # paths of each run
    assert metrics[0] == metrics[1]
    assert metrics[0]["evaluated_weights"] == "ema"
    assert metrics[0]["recipe"] == {
        "optimizer": "adamw",
        "scheduler": "cosine",
        "warmup_epochs": 0.5,
        "weight_decay": 0.05,
        "label_smoothing": 0.1,
        "mixup_alpha": 0.4,
        "cutmix_alpha": 1.0,
        "auto_augment": "trivialaugment",
        "ema_decay": 0.5,
        "accumulate_grad_batches": 2,
    }


@pytest.mark.slow
def test_evaluate_tests_the_ema_weights_train_validated_or_the_raw_ones(uninterrupted: Path, tmp_path: Path) -> None:
    trained = json.loads((uninterrupted / "metrics.json").read_text())
    errors = {}
    for weights in ("ema", "raw"):
        out = tmp_path / weights
        result = run_script(
            "evaluate.py",
            f"ckpt_path={uninterrupted / 'checkpoints' / 'last.ckpt'}",
            f"eval_weights={weights}",
            "trainer=cpu",
            f"hydra.run.dir={out}",
        )
        assert result.returncode == 0, result.stderr[-3000:]
        evaluated = json.loads((out / "metrics.json").read_text())
        assert evaluated["evaluated_weights"] == weights
        errors[weights] = (evaluated["top1_err"], evaluated["top5_err"])
    # the center crop of evaluate.py is the validation view: the EMA's numbers are train.py's
    assert errors["ema"] == pytest.approx((trained["val/top1_err"], trained["val/top5_err"]))
