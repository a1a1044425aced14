"""MixUp / CutMix of a training batch on the device, after normalisation (the cheapest place: one batched op on
tensors already there, nothing per sample in the loader), with torchvision's ``transforms.v2`` classes.

torchvision draws the mixing weight (and CutMix's box, and which of the two) from torch's global CPU generator.
Here that generator is forked and seeded from (run seed, epoch, optimizer-step batch, rank) for the call, so
each batch's mix is a function of where it is in the run: a resumed run mixes every batch as an uninterrupted
one did, and nothing else that draws from the global generator (dropout, the loaders) sees a different stream.
"""

from __future__ import annotations

from typing import Optional

import torch
from torchvision.transforms import v2

from spp_cls.data.sampling import mix_seed


class BatchMixer:
    """MixUp (``mixup_alpha`` > 0), CutMix (``cutmix_alpha`` > 0), or one of the two per batch, each half the time.

    ``__call__`` returns the mixed images and soft targets (rows sum to 1) for integer ``target``.
    """

    def __init__(self, num_classes: int, mixup_alpha: float, cutmix_alpha: float) -> None:
        mixers: list[v2.Transform] = []
        if mixup_alpha > 0:
            mixers.append(v2.MixUp(alpha=mixup_alpha, num_classes=num_classes))
        if cutmix_alpha > 0:
            mixers.append(v2.CutMix(alpha=cutmix_alpha, num_classes=num_classes))
        if not mixers:
            raise ValueError("BatchMixer needs mixup_alpha > 0 or cutmix_alpha > 0")
        self.transform = mixers[0] if len(mixers) == 1 else v2.RandomChoice(mixers)

    def __call__(
        self, images: torch.Tensor, target: torch.Tensor, seed: int, epoch: int, batch: int, rank: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.random.fork_rng(devices=[]):
            # the CPU generator only: torch.manual_seed would reseed the GPUs' generators too, outside the fork
            torch.random.default_generator.manual_seed(mix_seed("mix", seed, epoch, batch, rank))
            mixed, soft = self.transform(images, target)
        return mixed, soft


def build_mixer(num_classes: int, optim: dict) -> Optional[BatchMixer]:
    """The run's mixer from ``optim.mixup_alpha`` / ``optim.cutmix_alpha``; None when both are 0 (the paper)."""
    mixup, cutmix = float(optim.get("mixup_alpha", 0.0)), float(optim.get("cutmix_alpha", 0.0))
    return BatchMixer(num_classes, mixup, cutmix) if mixup > 0 or cutmix > 0 else None


def dominant_label(soft: torch.Tensor) -> torch.Tensor:
    """The class with the largest weight in each mixed target: what the training top-1/top-5 errors count
    against (the larger part of a MixUp blend or of a CutMix image; label smoothing does not change it)."""
    return soft.argmax(dim=1)
