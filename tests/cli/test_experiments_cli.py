"""A shrunk Table 2 sweep end to end on tiny embedded data, then the report of it."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY_SPEC
from tests.helpers import REPO, run_script

pytestmark = pytest.mark.slow


def test_shrunk_table2_sweep_and_its_report(tiny_data: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "table2"
    tiny = [
        f"data.root={tiny_data}",
        f"data.num_classes={TINY_SPEC.num_classes}",
        f"data.synthetic.train_per_class={TINY_SPEC.train_per_class}",
        f"data.synthetic.val_per_class={TINY_SPEC.val_per_class}",
        f"data.synthetic.min_short_side={TINY_SPEC.min_short_side}",
        f"data.synthetic.max_short_side={TINY_SPEC.max_short_side}",
        "data.num_workers=0",
        "data.batch_size=16",
        "data.resize_size=73",
        "data.crop_size=64",
        "model.width=0.125",
        "model.fc_dim=32",
        "trainer.max_epochs=2",
        "model.baseline_pool=paper_window",  # a 64 px crop leaves ZF-5 too small a conv5 for 6x6 bins
        "optim.step_milestones=[1]",
        "logger=csv",
        "evaluate_protocols=[center,full]",
    ]
    result = run_script(
        "train.py",
        "-m",
        "experiment=table2",
        "scale=embedded",
        "model=zf5",
        *tiny,
        f"hydra.sweep.dir={sweep}",
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted(p.parent for p in sweep.glob("*/metrics.json"))
    assert len(runs) == 3  # model=zf5 on the command line narrows the sweep to ZF-5 x 3 arms
    assert all((run / "eval" / "metrics.json").is_file() for run in runs)
    report = subprocess.run(
        [sys.executable, "-m", "spp_cls.reporting", str(sweep)], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert report.returncode == 0, report.stderr[-3000:]
    text = (sweep / "report" / "report.md").read_text()
    for row in ("(a) no SPP", "(b) SPP single-size", "(c) SPP multi-size", "35.99", "34.60"):
        assert row in text  # our three arms beside the paper's ZF-5 numbers
    assert "**Checkpoint: numbers from the final model of each run**" in text  # eval_checkpoint=last by default
    assert "| ZF-5 SPP multi-size: bins / fc6 input | 50 / 1,600 | 50 / 12,800 |" in text  # metrics.json bins
    rows = list(csv.DictReader((sweep / "report" / "report.csv").open()))
    assert {r["arm"] for r in rows if r["arch"] == "zf5"} == {"no_spp", "single", "multi"}
    assert (sweep / "report" / "val_top1_zf5.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
