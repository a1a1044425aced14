"""docker/entrypoint.sh run here as the image runs it: with a stand-in python, then with the real one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docker.dockerfile import image_env
from tests.helpers import REPO

ENTRYPOINT = REPO / "docker" / "entrypoint.sh"

# Prints its pid and arguments (after its SIGTERM handler is set), then, with WAIT_FOR_TERM, waits (bounded) for
# SIGTERM and reports it: what python would receive.
FAKE_PYTHON = """#!/bin/sh
trap 'echo "got TERM"; exit 0' TERM
echo "pid $$"
for arg in "$@"; do echo "arg $arg"; done
[ -n "${WAIT_FOR_TERM:-}" ] || exit 0
i=0
while [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
exit 3
"""


@pytest.fixture
def fake_python(tmp_path: Path) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "python"
    script.write_text(FAKE_PYTHON)
    script.chmod(0o755)
    return folder


def entrypoint(*args: str, path: Path, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    environment = dict(os.environ, PATH=f"{path}{os.pathsep}{os.environ['PATH']}", **env)
    return subprocess.run(
        [str(ENTRYPOINT), *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=60
    )


def python_args(stdout: str) -> list[str]:
    return [line.removeprefix("arg ") for line in stdout.splitlines() if line.startswith("arg ")]


@pytest.mark.parametrize("command, script", [("train", "train.py"), ("evaluate", "evaluate.py")])
def test_subcommands_run_the_entry_points_with_the_overrides(
    command: str, script: str, fake_python: Path, tmp_path: Path
) -> None:
    """From any working directory (Apptainer starts in the host's), the scripts beside the entrypoint run."""
    overrides = ["data=imagenet", "data.root=/data/with space", "trainer=ddp", "+tags=[a,b]"]
    result = entrypoint(command, *overrides, path=fake_python, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert python_args(result.stdout) == [str(REPO / script), *overrides]


def test_any_other_program_runs_as_given(fake_python: Path, tmp_path: Path) -> None:
    shell = entrypoint("sh", "-c", 'echo "$1 in $(pwd)"', "_", "a b", path=fake_python, cwd=tmp_path)
    assert shell.returncode == 0 and shell.stdout == f"a b in {tmp_path}\n", shell.stderr
    module = entrypoint("python", "-m", "spp_cls.reporting", "outputs/demo", path=fake_python, cwd=tmp_path)
    assert python_args(module.stdout) == ["-m", "spp_cls.reporting", "outputs/demo"]


def test_unknown_commands_and_bare_overrides_fail_with_a_hint(fake_python: Path, tmp_path: Path) -> None:
    for args in (["data=imagenet"], ["trian", "x=1"], ["--cfg", "job"]):
        result = entrypoint(*args, path=fake_python, cwd=tmp_path)
        assert result.returncode == 2 and result.stdout == "", args
        assert f"unknown command '{args[0]}'" in result.stderr and "train data=imagenet" in result.stderr
    bare = entrypoint(path=fake_python, cwd=tmp_path)
    assert bare.returncode == 2 and "usage: train" in bare.stderr
    usage = entrypoint("help", path=fake_python, cwd=tmp_path)
    assert usage.returncode == 0 and "evaluate ckpt_path=PATH" in usage.stdout


def test_python_replaces_the_shell_so_signals_reach_it(fake_python: Path, tmp_path: Path) -> None:
    """docker stop and Slurm signal the container's first process: that must be python itself (exec)."""
    environment = dict(os.environ, PATH=f"{fake_python}{os.pathsep}{os.environ['PATH']}", WAIT_FOR_TERM="1")
    process = subprocess.Popen(
        [str(ENTRYPOINT), "train"], cwd=tmp_path, env=environment, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout.readline() == f"pid {process.pid}\n"
        process.stdout.readline()  # the script's argument
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        assert process.stdout.read() == "got TERM\n"
    finally:
        process.kill()
        process.wait()


@pytest.mark.slow
def test_real_smoke_run_generates_its_data_and_writes_only_to_the_mounted_folders(tmp_path: Path) -> None:
    """The image's install check (`train experiment=smoke`) with the image's ENV (/cache mapped to a temporary
    folder): the run directory goes to outputs/ in the working directory, the generated data to SPP_CLS_CACHE,
    nothing elsewhere in the working directory or in HOME (under `docker run --user` HOME is / and read-only)."""
    work, cache, home = tmp_path / "work", tmp_path / "cache", tmp_path / "home"
    work.mkdir()
    env = {name: value.replace("/cache", str(cache), 1) for name, value in image_env().items() if name != "PATH"}
    result = entrypoint(
        "train",
        "experiment=smoke",
        path=Path(sys.executable).parent,
        cwd=work,
        **env,
        HOME=str(home),
        PYTHONWARNINGS="ignore",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (cache / "smoke-synthetic" / "MANIFEST.json").is_file()  # written after the last generated image
    (metrics,) = (work / "outputs" / "smoke" / "runs").glob("*/metrics.json")
    assert json.loads(metrics.read_text())["epochs"] == 1
    assert [path.name for path in work.iterdir()] == ["outputs"]
    assert not home.exists(), sorted(str(path) for path in home.rglob("*"))
