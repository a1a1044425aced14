"""What metrics.json records of where a run ran: the commit of the checkout the code runs from (marked when
tracked files differ from it), or the installed package's version where there is no checkout."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

import spp_cls
from spp_cls.cli import environment
from spp_cls.cli.environment import code_version, run_environment


def _git(repo: Path, *args: str) -> str:
    return subprocess.check_output(["git", "-C", str(repo), *args], text=True).strip()


def test_the_commit_of_the_checkout_and_whether_it_was_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "spp_cls" / "__init__.py"
    package.parent.mkdir()
    package.write_text("")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "x")
    monkeypatch.setattr(spp_cls, "__file__", str(package))
    commit = _git(tmp_path, "rev-parse", "--short", "HEAD")
    assert code_version() == commit
    (tmp_path / "notes.txt").write_text("untracked files do not count")
    assert code_version() == commit
    package.write_text("# changed")
    assert code_version() == commit + "+changes"


def test_without_a_checkout_the_package_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "site-packages" / "spp_cls" / "__init__.py"
    package.parent.mkdir(parents=True)
    package.write_text("")
    monkeypatch.setattr(spp_cls, "__file__", str(package))
    monkeypatch.setattr(environment.importlib.metadata, "version", lambda name: "0.3.0")
    assert code_version() == "spp-cls 0.3.0"


def test_the_record_names_the_arithmetic() -> None:
    record = run_environment(torch.device("cpu"), 1)
    assert record["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert record["threads"] == torch.get_num_threads() and record["device"] == "cpu"
    assert record["cpu"] and record["cpu"] != "unknown"
