"""Top-k error as a torchmetrics metric, so it accumulates over an epoch and syncs across devices."""

from __future__ import annotations

import torch
from torchmetrics.classification import MulticlassAccuracy


class TopKError(MulticlassAccuracy):
    """1 - top-k accuracy over all samples seen (micro average). ``k`` is capped at ``num_classes``."""

    def __init__(self, num_classes: int, k: int) -> None:
        super().__init__(num_classes=num_classes, top_k=min(k, num_classes), average="micro")

    def compute(self) -> torch.Tensor:
        return 1.0 - super().compute()
