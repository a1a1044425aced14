"""Per-process state that Lightning does not checkpoint, gathered from every rank into each checkpoint.

The global random generators (Python, NumPy, torch CPU and CUDA) drive dropout; a resumed run must continue
them where the interrupted one was, on every rank. The values are kept as tensors and plain Python data so
that checkpoints still load with ``weights_only=True``.
"""

from __future__ import annotations

import random
from typing import Any, cast

import numpy as np
import pytorch_lightning as pl
import torch
import torch.distributed as dist


def rng_state() -> dict[str, Any]:
    """This process's global random generators."""
    # the legacy global generator is an MT19937: its state is the tuple, never the dict
    state = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state(legacy=True))
    name, keys, pos, has_gauss, gauss = state
    version, mt, py_gauss = random.getstate()
    # only this process's own device (the one the strategy made current): by device index, a run resumed with
    # another CUDA_VISIBLE_DEVICES or another device per process would put the states on the wrong devices
    cuda = [torch.cuda.get_rng_state(torch.cuda.current_device())] if _uses_cuda() else []
    return {
        "python": (version, tuple(mt), py_gauss),
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "torch": torch.get_rng_state(),
        "cuda": list(cuda),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` returned (CUDA generators only where the process uses CUDA)."""
    version, mt, py_gauss = state["python"]
    random.setstate((version, tuple(mt), py_gauss))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and _uses_cuda():
        device = torch.cuda.current_device()
        # one state: this format; several: an earlier version's, every visible device's, by index
        saved = state["cuda"][0] if len(state["cuda"]) == 1 else state["cuda"][min(device, len(state["cuda"]) - 1)]
        torch.cuda.set_rng_state(saved, device)


def _uses_cuda() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_initialized()


def gather_from_ranks(trainer: pl.Trainer, obj: Any) -> list[Any]:
    """``obj`` of every process, in rank order (a collective: every rank must call it at the same point)."""
    if trainer.world_size == 1 or not (dist.is_available() and dist.is_initialized()):
        return [obj]
    gathered: list[Any] = [None] * trainer.world_size
    dist.all_gather_object(gathered, obj)
    return gathered
