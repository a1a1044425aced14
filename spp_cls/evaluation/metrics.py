"""Top-k error as a torchmetrics metric, so it accumulates over an epoch and syncs across devices."""

from __future__ import annotations

import torch
from torchmetrics import Metric


class TopKError(Metric):
    """1 - top-k accuracy over all samples seen (micro average). ``k`` is capped at ``num_classes``.

    One ``topk`` and two sums a step, all on the device. Not torchmetrics' ``MulticlassAccuracy``: its input
    checks count the distinct targets of every batch, which reads them back from the device and makes each
    training step wait for the GPU, and its per-class statistics cost a dozen kernels more.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = False
    misses: torch.Tensor  # states (add_state)
    total: torch.Tensor

    def __init__(self, num_classes: int, k: int) -> None:
        super().__init__()
        self.k = min(k, num_classes)
        self.add_state("misses", default=torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, scores: torch.Tensor, target: torch.Tensor) -> None:
        top = scores.topk(self.k, dim=1).indices
        self.misses += (top != target[:, None]).all(dim=1).sum()
        self.total += target.numel()

    def compute(self) -> torch.Tensor:
        """The error over everything seen (NaN before any sample)."""
        return self.misses.double().div(self.total).float()
