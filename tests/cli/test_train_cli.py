"""train.py end to end on tiny generated data: fast_dev_run, a real run, resume, config errors."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from spp_cls.checkpointing import load_safe
from spp_cls.config import register_configs
from spp_cls.config.validation import ConfigError, validate_train_config
from tests.helpers import REPO, run_script


def smoke(data: Path, run_dir: Path, *extra: str) -> list[str]:
    return ["experiment=smoke", f"data.root={data}", f"hydra.run.dir={run_dir}", *extra]


def test_cfg_job_prints_the_resolved_config(tmp_path: Path) -> None:
    result = run_script("train.py", "--cfg", "job", "model=overfeat7", "model.spp=false", cache=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "arch: overfeat7" in result.stdout and "spp: false" in result.stdout
    assert f"root: {tmp_path}/synthetic" in result.stdout  # interpolations resolved
    assert "${" not in result.stdout


def test_bad_config_fails_fast_with_the_key_name(tmp_path: Path) -> None:
    start = time.monotonic()
    result = run_script("train.py", "data.batch_size=0", "model.pyramid=[]", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2
    assert "data.batch_size must be >= 1" in result.stderr and "model.pyramid" in result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - start < 60  # seconds of imports, no data generation or training
    typo = run_script("train.py", "data.batch_sise=3", f"hydra.run.dir={tmp_path}")
    assert typo.returncode != 0 and "batch_sise" in typo.stderr


def test_an_unknown_eval_checkpoint_is_refused_naming_the_key() -> None:
    """Checked in-process (a subprocess costs ~9 s of imports): the start-up validation names the key and the
    values it takes, before any data is read."""
    register_configs()
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=smoke", "eval_checkpoint=final"])
    with pytest.raises(ConfigError, match=r"eval_checkpoint='final' is not one of \['last', 'best'\]"):
        validate_train_config(cfg)


@pytest.mark.slow
def test_fast_dev_run_in_deterministic_mode(tiny_data: Path, tmp_path: Path) -> None:
    result = run_script("train.py", *smoke(tiny_data, tmp_path, "debug=fdr", "trainer.deterministic=true"))
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["model"] == "zf5_spp" and metrics["global_step"] == 1


@pytest.mark.slow
def test_one_epoch_run_dir_and_resume(tiny_data: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    first = run_script("train.py", *smoke(tiny_data, run_dir, "model.spp=false"))
    assert first.returncode == 0, first.stderr[-3000:]
    for path in ("metrics.json", "checkpoints/best.ckpt", "checkpoints/last.ckpt", ".hydra/config.yaml", "train.log"):
        assert (run_dir / path).is_file(), path
    assert list((run_dir / "csv").glob("metrics.csv"))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    steps_per_epoch = 64 // 16
    assert metrics["model"] == "zf5" and metrics["epochs"] == 1 and metrics["global_step"] == steps_per_epoch
    assert metrics["val/images"] == 32 and metrics["val/skipped"] == 0
    assert metrics["eval_checkpoint"] == "last"
    assert metrics["evaluated_checkpoint"] == str(run_dir / "checkpoints/last.ckpt")
    assert 0 <= metrics["val/top1_err"] <= 1 and metrics["val/top5_err"] == 0  # 4 classes: top-5 always hits
    environment = metrics["environment"]  # where it ran (the report's "Where the runs ran")
    assert environment["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert (environment["device"], environment["processes"], environment["torch"]) == ("cpu", 1, torch.__version__)
    if (REPO / ".git").exists():  # the commit of the checkout (a wheel or an image records the package version)
        head = subprocess.check_output(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], text=True)
        assert environment["code"].startswith(head.strip())
    assert "epoch 1/1:" in (run_dir / "train.log").read_text()

    second = run_script(
        "train.py", *smoke(tiny_data, run_dir, "model.spp=false", "ckpt_path=auto", "trainer.max_epochs=3")
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming from" in (run_dir / "train.log").read_text()
    resumed = json.loads((run_dir / "metrics.json").read_text())
    assert resumed["epochs"] == 3 and resumed["global_step"] == 3 * steps_per_epoch
    last = load_safe(run_dir / "checkpoints/last.ckpt")
    assert last["epoch"] == 3 and last["global_step"] == 3 * steps_per_epoch  # 3 epochs done
