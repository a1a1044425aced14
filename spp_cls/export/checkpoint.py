"""The trained network of a spp-cls training checkpoint, rebuilt the way evaluate.py rebuilds it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Union

from spp_cls.checkpointing import CheckpointError, load_safe
from spp_cls.lightning import SppClassifier
from spp_cls.lightning.weights import load_weights
from spp_cls.models import SppNet, model_name
from spp_cls.models.timm_backbone import TimmBackboneNet


def load_trained_model(path: str | Path) -> tuple[Union[SppNet, TimmBackboneNet], int]:
    """The checkpoint's ``SppNet`` with its weights (weights-only load) and the run's training crop size."""
    checkpoint: dict[str, Any] = load_safe(path)
    hparams = checkpoint.get("hyper_parameters")
    if not isinstance(hparams, dict) or "model" not in hparams or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path} is not a checkpoint written by spp-cls training")
    module = SppClassifier(**hparams)
    name = model_name(hparams["model"]["arch"], hparams["model"]["spp"])
    load_weights(module, checkpoint["state_dict"], str(path), name)
    return module.model.eval(), int(hparams["input_size"])
