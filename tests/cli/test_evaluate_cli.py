"""evaluate.py: the training run's checkpoint gives the same metric; bad checkpoints give clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import run_script

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("trained")
    result = run_script("train.py", "experiment=smoke", f"data.root={tiny_data}", f"hydra.run.dir={run_dir}",
                        "trainer.max_epochs=2")
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def test_round_trip_gives_the_training_metric(trained: Path, tmp_path: Path) -> None:
    result = run_script("evaluate.py", f"ckpt_path={trained}/checkpoints/best.ckpt", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    evaluated = json.loads((tmp_path / "metrics.json").read_text())
    trained_metrics = json.loads((trained / "metrics.json").read_text())
    assert evaluated["model"] == "zf5_spp" and evaluated["protocol"] == "center"
    assert evaluated["images"] == 32 and evaluated["skipped"] == 0
    assert evaluated["top1_err"] == pytest.approx(trained_metrics["val/top1_err"], abs=1e-6)
    assert evaluated["top5_err"] == pytest.approx(trained_metrics["val/top5_err"], abs=1e-6)
    assert "| center | 1.0 | 32 | " in result.stdout and (tmp_path / "results.md").is_file()
    assert (trained / "evaluations" / f"{tmp_path.name}.md").is_file()  # beside the training run


def test_overrides_replace_saved_data_settings(trained: Path, tiny_data: Path, tmp_path: Path) -> None:
    data = tmp_path / "copy"
    shutil.copytree(tiny_data, data)
    next((data / "val").rglob("*.jpg")).write_bytes(b"garbage")
    # data.synthetic=null: read the copy as plain class folders (a synthetic root would be regenerated)
    args = (f"ckpt_path={trained}/checkpoints/last.ckpt", f"data.root={data}", "data.synthetic=null", "data.batch_size=5")
    result = run_script("evaluate.py", *args, "data.max_skip_fraction=0.05", f"hydra.run.dir={tmp_path}/eval")
    assert result.returncode == 0, result.stderr[-3000:]
    evaluated = json.loads((tmp_path / "eval/metrics.json").read_text())
    assert evaluated["images"] == 31 and evaluated["skipped"] == 1
    strict = run_script("evaluate.py", *args, f"hydra.run.dir={tmp_path}/strict")  # default threshold 0.001
    assert strict.returncode == 2 and "1 of the 32 test images" in strict.stderr and "Traceback" not in strict.stderr


def test_bad_checkpoints_give_clear_errors(trained: Path, tmp_path: Path) -> None:
    none = run_script("evaluate.py", f"hydra.run.dir={tmp_path}/0")
    assert none.returncode == 2 and "ckpt_path is required" in none.stderr and "Traceback" not in none.stderr
    missing = run_script("evaluate.py", f"ckpt_path={tmp_path}/nope.ckpt", f"hydra.run.dir={tmp_path}/a")
    assert missing.returncode == 2 and "checkpoint not found" in missing.stderr

    truncated = tmp_path / "cut.ckpt"
    truncated.write_bytes((trained / "checkpoints/best.ckpt").read_bytes()[:5000])
    cut = run_script("evaluate.py", f"ckpt_path={truncated}", f"hydra.run.dir={tmp_path}/b")
    assert cut.returncode == 2 and "unreadable" in cut.stderr

    ckpt = f"ckpt_path={trained}/checkpoints/best.ckpt"
    arch = run_script("evaluate.py", ckpt, "model.arch=convnet5", f"hydra.run.dir={tmp_path}/c")
    assert arch.returncode == 2 and "does not fit the configured model convnet5_spp" in arch.stderr
    classes = run_script("evaluate.py", ckpt, "data.num_classes=3", f"hydra.run.dir={tmp_path}/d")
    assert classes.returncode == 2 and "data.num_classes=3" in classes.stderr
