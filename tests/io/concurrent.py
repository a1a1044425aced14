"""Child-process side of the concurrency tests of ``spp_cls/io/files.py``.

The children load ``files.py`` by its path: importing the package would register the models in timm (and
import torch) in every spawned child, seconds each, for code that is plain file-system work.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

FILES = Path(__file__).resolve().parents[2] / "spp_cls" / "io" / "files.py"


def load_files(path: Path = FILES) -> ModuleType:
    """``files.py`` as a module of its own (not ``spp_cls.io.files``)."""
    spec = importlib.util.spec_from_file_location("files_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def write_repeatedly(
    target: str, payload: bytes, rounds: int, host: str, pid: int, start: Any, files_path: str = str(FILES)
) -> None:
    """Write ``payload`` to ``target`` ``rounds`` times with ``write_atomic``, as a process of PID ``pid`` on
    host ``host`` would: two containers on two nodes can run their writers under the same PID."""
    files = load_files(Path(files_path))
    real_pid, real_host = os.getpid, socket.gethostname
    os.getpid, socket.gethostname = (lambda: pid), (lambda: host)  # type: ignore[assignment]
    try:
        start.wait()
        for _ in range(rounds):
            files.write_atomic(target, payload)
    finally:
        os.getpid, socket.gethostname = real_pid, real_host  # type: ignore[assignment]


def record_under_lock(lock: str, log: str, tag: str, rounds: int, start: Any) -> None:
    """Append ``<tag> in`` and ``<tag> out`` lines to ``log`` while holding ``lock``, ``rounds`` times."""
    files = load_files()
    start.wait()
    for _ in range(rounds):
        with files.exclusive_lock(lock) as held:
            assert held
            for word in ("in", "out"):
                with open(log, "a") as f:
                    f.write(f"{tag} {word}\n")
                    f.flush()
                    os.fsync(f.fileno())  # takes a while: without the lock the other process would get in between
