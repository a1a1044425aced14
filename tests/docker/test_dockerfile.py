"""docker/Dockerfile without a Docker engine: base image, user, pinned install, layout, build context."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import PurePosixPath

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.docker.dockerfile import excluded_from_context, ignore_patterns, image_env, instructions
from tests.helpers import REPO

CONSTRAINTS = REPO / "requirements" / "constraints.txt"


def pins() -> dict[str, str]:
    lines = (line.split("#")[0].strip() for line in CONSTRAINTS.read_text().splitlines())
    return {canonicalize_name(name): version for name, _, version in (line.partition("==") for line in lines if line)}


def only(word: str) -> list[str]:
    return [ins.args for ins in instructions() if ins.word == word]


def index_of(word: str, predicate: Callable[[str], bool] = lambda args: True) -> int:
    return next(i for i, ins in enumerate(instructions()) if ins.word == word and predicate(ins.args))


def workdir() -> PurePosixPath:
    (path,) = only("WORKDIR")
    return PurePosixPath(path)


def test_base_is_the_cuda_runtime_of_the_pinned_torch_build() -> None:
    """The wheels carry their own CUDA libraries; a base of the same CUDA minor asks the driver for no more."""
    (base,) = only("FROM")
    image = re.fullmatch(r"nvidia/cuda:(\d+)\.(\d+)\.\d+-runtime-ubuntu\d+\.\d+", base)
    assert image, f"FROM {base}: expected an nvidia/cuda:X.Y.Z-runtime-ubuntuA.B image"
    toolkit = pins()["cuda-toolkit"].split(".")  # torch's CUDA, e.g. 13.0.3.0 for torch 2.14.1+cu130
    assert image.groups() == (toolkit[0], toolkit[1]), f"base CUDA {image.groups()} != torch's CUDA {toolkit[:2]}"


def test_runs_as_an_unprivileged_numeric_user_created_in_the_image() -> None:
    (user,) = only("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0 and (not gid or gid.isdigit() and int(gid) != 0), f"USER {user}"
    assert index_of("USER") < index_of("ENTRYPOINT")
    runs = " ".join(only("RUN"))
    assert re.search(rf"useradd [^&]*--uid {uid}\b", runs), f"no useradd --uid {uid}: USER {uid} would have no home"


def test_dependencies_are_the_pinned_set_installed_before_the_code_is_copied() -> None:
    """Every pip install uses the constraints without a cache, and the dependency layer sees only pyproject.toml
    and the constraints, so a code change does not reinstall torch."""
    installs = [args for args in only("RUN") if "pip install" in args]
    assert installs
    for args in installs:
        assert "-c requirements/constraints.txt" in args and "--no-cache-dir" in args, args
    deps = index_of("RUN", lambda args: "pip install" in args and " -r " in args)
    copied_before = {src for ins in instructions()[:deps] if ins.word == "COPY" for src in ins.words[:-1]}
    assert copied_before == {"pyproject.toml", "requirements/constraints.txt"}
    assert deps < index_of("COPY", lambda args: args.startswith("spp_cls/"))


def test_the_dependency_list_command_prints_pyprojects_dependencies_all_pinned() -> None:
    """Run the RUN's own python snippet here: it must print pyproject's dependencies, each one pinned."""
    command = next(args for args in only("RUN") if "tomllib" in args)
    code = re.search(r'python -c "(.*?)"\s*>', command).group(1)
    printed = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert printed.splitlines() == declared
    unpinned = {canonicalize_name(Requirement(line).name) for line in declared} - set(pins())
    assert not unpinned, f"not pinned in requirements/constraints.txt: {unpinned}"


def test_the_image_holds_the_repository_layout_with_the_entrypoint_script() -> None:
    """Each COPY lands at its repository path under WORKDIR: conf/ beside train.py, as Hydra expects."""
    root = workdir()
    for ins in instructions():
        if ins.word != "COPY":
            continue
        *sources, dest = ins.words
        for source in sources:
            target = root / dest / (PurePosixPath(source).name if (REPO / source).is_file() else "")
            assert target == root / source.rstrip("/"), f"COPY {source} {dest} lands at {target}"
    (entrypoint,) = only("ENTRYPOINT")
    script = PurePosixPath(json.loads(entrypoint)[0])
    assert script == root / "docker" / "entrypoint.sh", entrypoint
    assert os.access(REPO / "docker" / "entrypoint.sh", os.X_OK), "docker/entrypoint.sh is not executable"


def test_environment_python_from_the_venv_unbuffered_caches_in_the_cache_volume() -> None:
    env = image_env()
    assert env["PYTHONUNBUFFERED"] == "1" and env["PIP_NO_CACHE_DIR"] == "1"
    venv_bin = env["PATH"].split(":")[0]
    assert venv_bin.endswith("/bin") and f"-m venv {venv_bin.removesuffix('/bin')}" in " ".join(only("RUN"))
    assert env["SPP_CLS_CACHE"] == "/cache" and env["MPLCONFIGDIR"].startswith("/cache/")


def test_the_build_context_holds_what_is_copied_and_nothing_else() -> None:
    patterns = ignore_patterns()
    sources = [src for ins in instructions() if ins.word == "COPY" for src in ins.words[:-1]]
    files = [path for src in sources for path in ([REPO / src] if (REPO / src).is_file() else (REPO / src).rglob("*"))]
    kept = [path for path in files if path.is_file() and "__pycache__" not in path.parts]
    assert kept
    for path in kept:
        relative = path.relative_to(REPO).as_posix()
        assert not excluded_from_context(relative, patterns), f"{relative} is copied but excluded by .dockerignore"
    for outside in (
        "outputs/demo/run/checkpoints/last.ckpt",
        ".venv/bin/python",
        ".git/HEAD",
        "tests/helpers.py",
        "spp_cls/__pycache__/x.cpython-312.pyc",
        "docker/Dockerfile",
        "data/train/a.jpg",
    ):
        assert excluded_from_context(outside, patterns), f"{outside} would be sent to the Docker daemon"


def test_dockerignore_matching_follows_dockers_rules() -> None:
    """The matcher the test above relies on: parent folders match, '*' stays in a segment, the last pattern wins."""
    assert excluded_from_context("a/b/c.py", ["a"]) and not excluded_from_context("a/b/c.py", ["*", "!a/"])
    assert not excluded_from_context("x/y.txt", ["*.txt"]) and excluded_from_context("x/y.txt", ["**/*.txt"])
    assert excluded_from_context("a/b/__pycache__/m.pyc", ["!a", "**/__pycache__"])


def apt_installed() -> set[str]:
    """The packages the image's apt-get install commands name."""
    packages: set[str] = set()
    for args in only("RUN"):
        for command in args.split("&&"):
            words = command.split()
            if words[:1] == ["DEBIAN_FRONTEND=noninteractive"]:
                words = words[1:]
            if words[:2] == ["apt-get", "install"]:
                packages |= {word for word in words[2:] if not word.startswith("-")}
    return packages


def test_torch_compile_finds_a_c_compiler_and_this_pythons_headers_at_run_time() -> None:
    """Triton (torch.compile on a GPU) builds a C module on first use: gcc with the C library's headers, and
    Python.h of the Python the venv is made from (Debian's python3-dev matches its python3). The image has one
    stage, the runtime one, so what it installs is there when train.py runs."""
    assert len(only("FROM")) == 1
    packages = apt_installed()
    assert {"python3", "python3-venv"} <= packages
    assert "gcc" in packages or "build-essential" in packages
    assert "libc6-dev" in packages or "build-essential" in packages  # --no-install-recommends: not pulled by gcc
    assert "python3-dev" in packages or any(re.fullmatch(r"(lib)?python3\.\d+-dev", p) for p in packages)
    venv = next(args for args in only("RUN") if " -m venv " in args)
    assert "python3 -m venv" in venv  # the venv's Python is the one whose headers python3-dev installs
    env = image_env()
    for name in ("TRITON_CACHE_DIR", "TORCHINDUCTOR_CACHE_DIR"):  # writable under docker run --user
        assert env[name].startswith("/cache/"), name


def test_apt_package_parsing_reads_every_install_command() -> None:
    assert "python3-dev" in apt_installed() and "--no-install-recommends" not in apt_installed()
