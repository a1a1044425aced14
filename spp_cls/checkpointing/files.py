"""Checkpoint files (and every other file spp-cls writes): atomic writes, and loads that never execute
pickled code.

A checkpoint is serialised in memory, written to a temporary file next to the target, flushed to disk and
renamed over the target, so a crash leaves either the old file or the new one, never half of one. Loading
uses ``torch.load(weights_only=True)``: tensors, numbers, strings and containers only.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or does not fit the requested model."""


def _temporary(path: Path, pid: int) -> Path:
    return path.with_name(f".{path.name}.tmp-{pid}")


def write_atomic(path: str | Path, data: str | bytes | memoryview) -> Path:
    """Write ``data`` to a temporary file next to ``path``, flush it to disk and rename it over ``path``:
    readers see the old file or the new one, never half of one. Every file spp-cls writes goes through here."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path, os.getpid())
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Delete the temporary files that writes of ``path`` by processes no longer running left behind
    (``kill -9`` during a write); returns them."""
    path = Path(path)
    stale = []
    for tmp in path.parent.glob(f".{path.name}.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[1]
        if pid.isdigit() and not _running(int(pid)):
            tmp.unlink(missing_ok=True)
            stale.append(tmp)
    return stale


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # no signal: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        pass
    return True


def save_atomic(checkpoint: dict[str, Any], path: str | Path) -> None:
    """Write ``checkpoint`` to ``path`` atomically."""
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    write_atomic(path, buffer.getbuffer())


def load_safe(path: str | Path, map_location: Any = "cpu", mmap: bool = False) -> dict[str, Any]:
    """Load a checkpoint with weights-only unpickling; raise CheckpointError with the reason otherwise.

    ``mmap``: map the tensors instead of reading them (cheap when only a few fields are needed).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"refusing to load {path}: it holds objects other than tensors and plain data ({err})"
        ) from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        raise CheckpointError(f"checkpoint {path} is unreadable (truncated or not a torch checkpoint): {err}") from err
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(checkpoint).__name__}, not a checkpoint dict")
    return checkpoint
