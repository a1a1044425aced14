"""The trained network of a spp-cls training checkpoint, rebuilt the way evaluate.py rebuilds it.

The weights ``weights`` names (``ema``, the default: the EMA weights when the run kept an EMA that was updated,
else the only weights there are; ``raw``: the optimizer's own; the choice ``eval_weights`` makes for evaluate.py,
by the same function) replace every weight of the rebuilt network, so the network is built without the run's
pretrained weights (``model.pretrained``, ``model.pretrained_file``): loading them would need the run's weights
file, or timm's hub, on this machine only for them to be overwritten."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Union

from spp_cls.checkpointing import CheckpointError, load_safe
from spp_cls.lightning import SppClassifier
from spp_cls.lightning.ema import checkpoint_weights
from spp_cls.lightning.weights import load_weights
from spp_cls.models import SppNet, model_name
from spp_cls.models.timm_backbone import TimmBackboneNet


def load_trained_model(path: str | Path, weights: str = "ema") -> tuple[Union[SppNet, TimmBackboneNet], int]:
    """The checkpoint's network with its ``weights`` (``ema`` or ``raw``; weights-only load) and the run's training
    crop size."""
    checkpoint: dict[str, Any] = load_safe(path)
    hparams = checkpoint.get("hyper_parameters")
    if not isinstance(hparams, dict) or not isinstance(hparams.get("model"), Mapping) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path} is not a checkpoint written by spp-cls training")
    model = {**hparams["model"], "pretrained": False, "pretrained_file": None}  # the checkpoint's weights replace them
    module = SppClassifier(**{**hparams, "model": model})
    name = model_name(hparams["model"]["arch"], hparams["model"]["spp"])
    state, _ = checkpoint_weights(checkpoint, weights)
    load_weights(module, state, str(path), name)
    return module.model.eval(), int(hparams["input_size"])
