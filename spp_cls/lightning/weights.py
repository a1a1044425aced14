"""Trained weights into a freshly built ``SppClassifier``: what evaluation and export both need to rebuild a
training run's network from its checkpoint."""

from __future__ import annotations

import torch

from spp_cls.checkpointing import CheckpointError
from spp_cls.lightning.module import SppClassifier


def load_weights(module: SppClassifier, state_dict: dict[str, torch.Tensor], ckpt_path: str, name: str) -> None:
    """Load the checkpoint's weights or explain which tensors do not fit the configured model (a wrong
    ``model.*`` override would otherwise surface as a bare size mismatch from torch)."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong = [k for k in expected if k in state_dict and state_dict[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        details = [
            f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}" for k in wrong[:3]
        ]
        details += [f"missing {k}" for k in missing[:3]] + [f"unexpected {k}" for k in unexpected[:3]]
        raise CheckpointError(
            f"checkpoint {ckpt_path} does not fit the configured model {name} with "
            f"{module.hparams['num_classes']} classes: " + "; ".join(details)
        )
    module.load_state_dict(state_dict)
