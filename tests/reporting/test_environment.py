"""The report's line on where the runs of a set of tables ran (metrics.json's ``environment``)."""

from __future__ import annotations

from pathlib import Path

from spp_cls.reporting import build_report
from tests.reporting.factory import make_run

AVX512 = {
    "code": "09b221f",
    "python": "3.11.7",
    "torch": "2.14.1+cu130",
    "cpu": "Intel(R) Xeon(R) Processor",
    "cpu_capability": "AVX512",
    "threads": 2,
    "device": "cpu",
    "processes": 1,
}


def _line(markdown: str) -> str:
    return next(line for line in markdown.splitlines() if line.startswith("**Where the runs ran"))


def test_runs_that_ran_alike_get_one_line(tmp_path: Path) -> None:
    for seed in (0, 1):
        make_run(tmp_path / f"base{seed}", spp=False, seed=seed, metrics={"environment": AVX512})
        make_run(tmp_path / f"spp{seed}", seed=seed, metrics={"environment": AVX512})
    line = _line(build_report([tmp_path]).markdown)
    assert line == (
        "**Where the runs ran**: code 09b221f, torch 2.14.1+cu130, Intel(R) Xeon(R) Processor (AVX512, 2 threads), "
        "1 process on the CPU."
    )


def test_runs_from_different_machines_are_counted_and_the_reader_warned(tmp_path: Path) -> None:
    gpus = {**AVX512, "device": "NVIDIA H200", "processes": 8, "threads": 16}
    make_run(tmp_path / "base0", spp=False, seed=0, metrics={"environment": AVX512})
    make_run(tmp_path / "base1", spp=False, seed=1, metrics={"environment": {**AVX512, "cpu_capability": "AVX2"}})
    make_run(tmp_path / "spp0", seed=0, metrics={"environment": gpus})
    make_run(tmp_path / "spp1", seed=1)  # older than the record
    line = _line(build_report([tmp_path]).markdown)
    assert line.startswith("**Where the runs ran: 3 environments** — 1 run: code 09b221f")
    assert "(AVX2, 2 threads), 1 process on the CPU" in line and "(AVX512, 2 threads), 1 process on the CPU" in line
    assert "(AVX512, 16 threads), 8 processes on NVIDIA H200" in line
    assert "; 1 run older than this record." in line and "floating-point sums" in line


def test_reports_of_runs_without_the_record_have_no_line(tmp_path: Path) -> None:
    make_run(tmp_path / "base0", spp=False)
    make_run(tmp_path / "spp0")
    assert "Where the runs ran" not in build_report([tmp_path]).markdown
