"""evaluate.py: the training run's checkpoint gives the same metric; bad checkpoints give clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from spp_cls.checkpointing import load_safe
from spp_cls.cli.errors import USER_ERRORS
from spp_cls.cli.evaluate import evaluate
from spp_cls.config import register_configs
from tests.helpers import REPO, run_script

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("trained")
    result = run_script(
        "train.py", "experiment=smoke", f"data.root={tiny_data}", f"hydra.run.dir={run_dir}", "trainer.max_epochs=2"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def test_round_trip_gives_the_training_metric(trained: Path, tmp_path: Path) -> None:
    """After training the run tests its final model by default (eval_checkpoint=last): metrics.json names
    last.ckpt, which holds the weights of the last step, and evaluate.py of that file gives the same numbers."""
    trained_metrics = json.loads((trained / "metrics.json").read_text())
    last = trained / "checkpoints" / "last.ckpt"
    assert trained_metrics["eval_checkpoint"] == "last" and trained_metrics["evaluated_checkpoint"] == str(last)
    assert trained_metrics["best_checkpoint"] == str(trained / "checkpoints" / "best.ckpt")
    saved = load_safe(last)
    assert saved["epoch"] == trained_metrics["epochs"] == 2 and saved["global_step"] == trained_metrics["global_step"]
    # zf5_spp at width 0.125: 32 conv5 channels, the 50 bins of {6,3,2,1}
    assert (trained_metrics["bins"], trained_metrics["fc6_inputs"]) == (50, 50 * 32)
    result = run_script(
        "evaluate.py", f"ckpt_path={trained_metrics['evaluated_checkpoint']}", f"hydra.run.dir={tmp_path}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    evaluated = json.loads((tmp_path / "metrics.json").read_text())
    assert evaluated["model"] == "zf5_spp" and evaluated["protocol"] == "center"
    assert evaluated["images"] == 32 and evaluated["skipped"] == 0
    assert evaluated["top1_err"] == pytest.approx(trained_metrics["val/top1_err"], abs=1e-6)
    assert evaluated["top5_err"] == pytest.approx(trained_metrics["val/top5_err"], abs=1e-6)
    assert "| center | 1.0 | 32 | " in result.stdout and (tmp_path / "results.md").is_file()
    assert (trained / "evaluations" / f"{tmp_path.name}.md").is_file()  # beside the training run
    assert f"weights of {last} (eval_checkpoint=last)" in (trained / "train.log").read_text()


def test_a_limited_test_split_is_reported_not_refused(trained: Path, tmp_path: Path) -> None:
    result = run_script(
        "evaluate.py",
        f"ckpt_path={trained}/checkpoints/best.ckpt",
        "+trainer.extra.limit_test_batches=1",
        f"hydra.run.dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "metrics.json").read_text())["images"] == 16  # one batch of the 32 images
    assert "trainer.limit_test_batches=1 tested 16 of the 32 images" in (tmp_path / "evaluate.log").read_text()


def test_overrides_replace_saved_data_settings(trained: Path, tiny_data: Path, tmp_path: Path) -> None:
    data = tmp_path / "copy"
    shutil.copytree(tiny_data, data)
    next((data / "val").rglob("*.jpg")).write_bytes(b"garbage")
    # data.synthetic=null: read the copy as plain class folders (a synthetic root would be regenerated)
    args = (
        f"ckpt_path={trained}/checkpoints/last.ckpt",
        f"data.root={data}",
        "data.synthetic=null",
        "data.batch_size=5",
    )
    result = run_script("evaluate.py", *args, "data.max_skip_fraction=0.05", f"hydra.run.dir={tmp_path}/eval")
    assert result.returncode == 0, result.stderr[-3000:]
    evaluated = json.loads((tmp_path / "eval/metrics.json").read_text())
    assert evaluated["images"] == 31 and evaluated["skipped"] == 1
    strict = run_script("evaluate.py", *args, f"hydra.run.dir={tmp_path}/strict")  # default threshold 0.001
    assert strict.returncode == 2 and "1 of the 32 test images" in strict.stderr and "Traceback" not in strict.stderr


def _evaluation_error(tmp_path: Path, ckpt: Path | str, *overrides: str) -> str:
    """What evaluate.py reports for ``ckpt``, in this process (each case a subprocess would cost ~9 s of imports)."""
    register_configs()
    args = [f"ckpt_path={ckpt}", *overrides]
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose("evaluate", overrides=args)
    with pytest.raises(USER_ERRORS) as raised:
        evaluate([str(ckpt)], cfg, args, tmp_path, ["center"])
    return str(raised.value)


def test_bad_checkpoints_give_clear_errors(trained: Path, tmp_path: Path) -> None:
    # the command line: exit status 2 and the message, no traceback (the same wrapper serves every user error)
    none = run_script("evaluate.py", f"hydra.run.dir={tmp_path}/0")
    assert none.returncode == 2 and "ckpt_path is required" in none.stderr and "Traceback" not in none.stderr

    assert "checkpoint not found" in _evaluation_error(tmp_path, tmp_path / "nope.ckpt")
    truncated = tmp_path / "cut.ckpt"
    truncated.write_bytes((trained / "checkpoints/best.ckpt").read_bytes()[:5000])
    assert "unreadable" in _evaluation_error(tmp_path, truncated)
    best = trained / "checkpoints/best.ckpt"
    assert "does not fit the configured model convnet5_spp" in _evaluation_error(tmp_path, best, "model.arch=convnet5")
    assert "data.num_classes=3" in _evaluation_error(tmp_path, best, "data.num_classes=3")


def test_every_protocol_in_one_run(trained: Path, tmp_path: Path) -> None:
    protocols = "[center,ten_view,full,full_flip,multiview]"
    result = run_script(
        "evaluate.py",
        f"ckpt_path={trained}/checkpoints/best.ckpt",
        f"protocols={protocols}",
        "save_scores=true",
        f"hydra.run.dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    evaluated = json.loads((tmp_path / "metrics.json").read_text())
    views = {name: r["views_per_image"] for name, r in evaluated["protocols"].items()}
    assert sorted(views) == ["center", "full", "full_flip", "multiview", "ten_view"]
    assert views["center"] == 1 and views["ten_view"] == 10 and views["full"] == 1 and views["full_flip"] == 2
    assert 90 < views["multiview"] <= 98  # 96 + 2 where every window position is distinct
    assert all(r["images"] == 32 and r["images_per_s"] > 0 for r in evaluated["protocols"].values())
    for line in ("| ten_view | 10.0 | 32 |", "| multiview |"):
        assert line in (tmp_path / "results.md").read_text()
    scores = np.load(tmp_path / "scores_multiview_rank0.npz")
    assert scores["scores"].shape == (32, 4) and np.allclose(scores["scores"].sum(1), 1, atol=1e-5)


def test_an_ensemble_averages_its_members(trained: Path, tmp_path: Path) -> None:
    best, last = f"{trained}/checkpoints/best.ckpt", f"{trained}/checkpoints/last.ckpt"
    runs = {}
    for name, ckpt in (("best", best), ("last", last), ("both", f"[{best},{last}]")):
        result = run_script("evaluate.py", f"ckpt_path={ckpt}", "save_scores=true", f"hydra.run.dir={tmp_path}/{name}")
        assert result.returncode == 0, result.stderr[-3000:]
        runs[name] = np.load(tmp_path / name / "scores_center_rank0.npz")["scores"]
    np.testing.assert_allclose(runs["both"], (runs["best"] + runs["last"]) / 2, rtol=1e-5, atol=1e-6)
    assert json.loads((tmp_path / "both" / "metrics.json").read_text())["model"].startswith("ensemble of 2")


def test_two_processes_give_the_single_process_results(trained: Path, tmp_path: Path) -> None:
    """DDP on 2 CPU processes: every image once (no padding), the same scores as one process."""
    common = (
        f"ckpt_path={trained}/checkpoints/best.ckpt",
        "protocols=[center,full]",
        "save_scores=true",
        "trainer.accelerator=cpu",
        "data.batch_size=6",
    )
    single = run_script("evaluate.py", *common, f"hydra.run.dir={tmp_path}/one")
    double = run_script(
        "evaluate.py", *common, "trainer.devices=2", "trainer.strategy=ddp", f"hydra.run.dir={tmp_path}/two"
    )
    assert single.returncode == 0 and double.returncode == 0, double.stderr[-3000:]
    one = json.loads((tmp_path / "one/metrics.json").read_text())["protocols"]
    two = json.loads((tmp_path / "two/metrics.json").read_text())["protocols"]
    for name in ("center", "full"):
        assert one[name]["images"] == two[name]["images"] == 32
        assert one[name]["top1_err"] == two[name]["top1_err"] and one[name]["top5_err"] == two[name]["top5_err"]
        reference = by_file(tmp_path / f"one/scores_{name}_rank0.npz")
        merged = by_file(*(tmp_path / f"two/scores_{name}_rank{r}.npz" for r in (0, 1)))
        np.testing.assert_allclose(merged, reference, rtol=1e-5, atol=1e-6)


def by_file(*paths: Path) -> np.ndarray:
    """The scores of saved score files in file-list order, by their ``indices`` (``full`` tests images ordered
    by size, each rank its share r, r + 2, ...): every image exactly once."""
    loaded = [np.load(path) for path in paths]
    indices = np.concatenate([part["indices"] for part in loaded])
    scores = np.concatenate([part["scores"] for part in loaded])
    assert sorted(indices.tolist()) == list(range(len(indices)))
    ordered = np.empty_like(scores)
    ordered[indices] = scores
    return ordered


def test_full_image_protocols_need_an_spp_model(tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "baseline"
    trained_baseline = run_script(
        "train.py",
        "experiment=smoke",
        f"data.root={tiny_data}",
        "model.spp=false",
        "validate_best=false",
        "evaluate_protocols=[full]",
        f"hydra.run.dir={run}",
    )
    assert trained_baseline.returncode == 0, trained_baseline.stderr[-3000:]
    assert not (run / "eval").exists()  # after training, protocols a no-SPP model cannot take are skipped
    result = run_script(
        "evaluate.py",
        f"ckpt_path={run}/checkpoints/last.ckpt",
        "protocols=[center,multiview]",
        f"hydra.run.dir={tmp_path}/eval",
    )
    assert result.returncode == 2 and "protocol multiview feeds whole images" in result.stderr
    assert "Traceback" not in result.stderr
