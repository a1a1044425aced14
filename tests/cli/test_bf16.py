"""bf16 autocast end to end on a CPU: train.py with ``trainer.precision=bf16-mixed`` trains and then tests the
best checkpoint with every kind of protocol (crops, whole images, views on feature maps), and evaluate.py
tests a checkpoint under bf16 with the multi-view protocol. The multi-view scales are cut to two (64, 80) to
keep the runs short: bf16 convolutions are slow on a CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import run_script

pytestmark = pytest.mark.slow

PROTOCOLS = ["center", "ten_view", "full", "full_flip", "multiview"]
FAST = ("trainer.precision=bf16-mixed", "protocol.multiview.scales=[64,80]")


def test_bf16_training_evaluates_every_protocol_and_evaluate_py_runs_multiview(tiny_data: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = run_script(
        "train.py",
        "experiment=smoke",
        f"data.root={tiny_data}",
        *FAST,
        f"evaluate_protocols=[{','.join(PROTOCOLS)}]",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run_dir / "metrics.json").read_text())["val/images"] == 32  # written after the evaluation
    evaluated = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert sorted(evaluated["protocols"]) == sorted(PROTOCOLS)
    views = {"center": 1, "ten_view": 10, "full": 1, "full_flip": 2}
    for name, metrics in evaluated["protocols"].items():
        assert metrics["images"] == 32 and metrics["skipped"] == 0, name
        assert 0.0 <= metrics["top1_err"] <= 1.0 and 0.0 <= metrics["top5_err"] <= metrics["top1_err"], name
        assert metrics["views_per_image"] == views.get(name, metrics["views_per_image"]), name
    # multiview: 2 scales of the 18-window layout (fewer where windows coincide), both mirrors, + 2 full views
    assert 2 + 2 * 2 * 3 <= evaluated["protocols"]["multiview"]["views_per_image"] <= 2 + 2 * 2 * 9

    out = tmp_path / "evaluate"
    result = run_script(
        "evaluate.py",
        f"ckpt_path={run_dir}/checkpoints/last.ckpt",
        *FAST,
        "protocols=[multiview]",
        f"hydra.run.dir={out}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    evaluated_again = json.loads((out / "metrics.json").read_text())
    assert evaluated_again["protocol"] == "multiview" and evaluated_again["images"] == 32
    assert (
        evaluated_again["protocols"]["multiview"]["views_per_image"]
        == evaluated["protocols"]["multiview"]["views_per_image"]
    )
