"""MODEL of ``python -m spp_cls.predict``: a training checkpoint (loaded weights-only and rebuilt as evaluate.py and
the export rebuild it) or a program written by ``python -m spp_cls.export`` (``.onnx``, ``.pt2``), by its suffix."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from spp_cls.checkpointing import CheckpointError, load_safe
from spp_cls.export.checkpoint import load_trained_model
from spp_cls.models import model_name
from spp_cls.predict.errors import PredictError
from spp_cls.predict.exported import ExportedNet, load_onnx, load_pt2
from spp_cls.predict.settings import RunSettings, checkpoint_settings, default_settings, run_settings

EXPORTED = (".onnx", ".pt2")


@dataclass
class LoadedModel:
    """A network the test protocols can call, what it is, and the run settings to feed it with."""

    net: nn.Module
    name: str
    num_classes: int
    settings: RunSettings


def _first_line(err: BaseException) -> str:
    return str(err).splitlines()[0][:300] if str(err) else type(err).__name__


def load_checkpoint(path: Path, device: torch.device, weights: str = "ema") -> LoadedModel:
    """A training checkpoint's network (its ``weights``: ``ema`` or ``raw``) with its run's settings and classes."""
    try:
        checkpoint = load_safe(path, mmap=True)
        settings = checkpoint_settings(checkpoint, path)
        net, _ = load_trained_model(path, weights)
    except CheckpointError as err:
        message = _first_line(err)
        if "unreadable" in message:
            message = f"{path} is neither a training checkpoint nor an exported model (.onnx, .pt2)"
        raise PredictError(message) from err
    hparams = checkpoint["hyper_parameters"]
    name = model_name(hparams["model"]["arch"], hparams["model"]["spp"])
    return LoadedModel(net.to(device), name, int(hparams["num_classes"]), settings)


def load_exported(path: Path, device: torch.device, run: Optional[str]) -> LoadedModel:
    """An exported program; its settings and class index from ``run`` (a checkpoint or run directory) or defaults."""
    net: ExportedNet = load_onnx(path) if path.suffix.lower() == ".onnx" else load_pt2(path, device)
    if run is not None:
        settings = run_settings(run)
    else:
        settings = default_settings(net.num_classes, net.fixed_size[0] if net.fixed_size else None)
        data = settings.data
        print(
            f"note: {path.name} is read with the default test sizes ({data.resize_size}/{data.crop_size}) and "
            "ImageNet's channel statistics; --run CKPT gives its run's own",
            file=sys.stderr,
        )
    sizes = "any size" if net.fixed_size is None else f"{net.fixed_size[0]}x{net.fixed_size[1]}"
    return LoadedModel(net, f"{path.name} ({sizes})", net.num_classes, settings)


def load_model(
    path: str | Path, device: torch.device, run: Optional[str] = None, weights: Optional[str] = None
) -> LoadedModel:
    """MODEL by its suffix: ``.onnx``/``.pt2`` an exported program, anything else a training checkpoint (with its
    ``weights``, ``ema`` when None)."""
    path = Path(path)
    if not path.is_file():
        raise PredictError(f"model not found: {path}")
    if path.suffix.lower() in EXPORTED:  # R18.ONNX too
        if weights is not None:
            raise PredictError(
                "--weights is for training checkpoints; an exported model holds the weights it was exported with "
                "(python -m spp_cls.export --weights)"
            )
        return load_exported(path, device, run)
    if run is not None:
        raise PredictError("--run is for exported models (.onnx, .pt2); a checkpoint holds its own run settings")
    return load_checkpoint(path, device, weights or "ema")
