"""Checkpoint files: atomic saves (through ``spp_cls.io.write_atomic``) and loads that never execute pickled code.

A checkpoint is serialised in memory, written to a temporary file next to the target, flushed to disk and
renamed over the target, so a crash leaves either the old file or the new one, never half of one. Loading
uses ``torch.load(weights_only=True)``: tensors, numbers, strings and containers only.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

from spp_cls.io import write_atomic


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or does not fit the requested model."""


def save_atomic(checkpoint: dict[str, Any], path: str | Path) -> None:
    """Write ``checkpoint`` to ``path`` atomically."""
    import torch

    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    write_atomic(path, buffer.getbuffer())


def load_safe(path: str | Path, map_location: Any = "cpu", mmap: bool = False) -> dict[str, Any]:
    """Load a checkpoint with weights-only unpickling; raise CheckpointError with the reason otherwise.

    ``mmap``: map the tensors instead of reading them (cheap when only a few fields are needed).
    """
    import torch

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
