"""Where a run ran, as its metrics.json records it (``environment``): what can change its numbers besides its
config and seed.

The same commit, data and seed give different numbers on another machine: a CPU's vector unit (AVX2 or
AVX-512) and the number of threads change the order of floating-point sums, and 4 epochs of training amplify
that into points of error (README, "The main job", shows by how much). Recording the code, the libraries and
the arithmetic lets the report say when the runs of one table did not share them, and lets a user whose numbers
differ from the README's see why.
"""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from pathlib import Path
from typing import Any, Optional

import torch

import spp_cls

_GIT_TIMEOUT_S = 10.0


def _git(root: Path, *args: str) -> Optional[str]:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=_GIT_TIMEOUT_S, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def code_version() -> str:
    """The commit of the spp-cls checkout the code runs from (``+changes`` when tracked files differ from it), or
    the installed package's version where there is no checkout (a wheel, a Docker image without ``.git``)."""
    root = Path(spp_cls.__file__).resolve().parent.parent
    if (root / ".git").exists():
        commit = _git(root, "rev-parse", "--short", "HEAD")
        if commit:
            changed = _git(root, "status", "--porcelain", "--untracked-files=no")
            return commit + ("+changes" if changed else "")
    try:
        return f"spp-cls {importlib.metadata.version('spp-cls')}"
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def cpu_model() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def accelerator_name(device: torch.device) -> str:
    """The device a run computed on, by name (``cpu`` or the GPU's model)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return device.type


def run_environment(device: torch.device, processes: int) -> dict[str, Any]:
    """The record of metrics.json's ``environment``: code, libraries, CPU and its vector unit, threads, devices."""
    return {
        "code": code_version(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "device": accelerator_name(device),
        "processes": processes,
    }
