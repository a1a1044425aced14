"""``data.auto_augment``: RandAugment or TrivialAugment on the training view, from torchvision's v2 transforms
(part of the modern recipe; the paper's augmentation stays the default, ``none``).

The policy runs on the finished uint8 view (after the crop, resize and flip: the cheapest place, a 224 image
rather than the decoded one) in the loader worker. torchvision's transforms draw from torch's global
generator, so each sample's draw is seeded from the sample's own generator (``random.Random`` seeded by
(seed, epoch, sample), see ``sampling.py``) inside ``torch.random.fork_rng``: the same sample gets the same
policy whatever worker or rank loads it and after a restart (exact resume), and nothing else's random
stream moves.
"""

from __future__ import annotations

import random
from functools import lru_cache
from typing import Callable

import torch
from torchvision.transforms import v2

#: data.auto_augment values -> torchvision's policy (with its ImageNet defaults)
POLICIES: dict[str, Callable[[], torch.nn.Module]] = {
    "randaugment": lambda: v2.RandAugment(),  # 2 operations at magnitude 9 of 31
    "trivialaugment": lambda: v2.TrivialAugmentWide(),
}
AUTO_AUGMENTS = ("none", *POLICIES)


@lru_cache(maxsize=None)
def _policy(name: str) -> torch.nn.Module:
    return POLICIES[name]()


def auto_augment(view: torch.Tensor, name: str, rng: random.Random) -> torch.Tensor:
    """``view`` (3, S, S) uint8 through the policy ``name``, its randomness drawn from ``rng``."""
    if name == "none":
        return view
    seed = rng.getrandbits(63)
    with torch.random.fork_rng(devices=[]):
        # the CPU generator only: torch.manual_seed would reseed the GPUs' generators too, outside the fork (with
        # data.num_workers=0 the training process's dropout would then follow the last sample's seed)
        torch.random.default_generator.manual_seed(seed)
        return _policy(name)(view)
