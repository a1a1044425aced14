"""Batches of uint8 views -> the top-k classes of each image, through a test protocol's own ``scores`` (the same
views, normalisation and averaging as ``evaluate.py``'s)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from spp_cls.data.normalize import BatchNormalizer, normalize_nested
from spp_cls.evaluation.protocols import TestProtocol
from spp_cls.predict.images import Batch
from spp_cls.predict.model import LoadedModel


@dataclass
class Prediction:
    """One image's top-k: class positions in the index, the index's labels, readable names, probabilities."""

    path: str
    indices: list[int]
    classes: list[str]
    names: list[str]
    probabilities: list[float]

    def record(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "classes": self.classes,
            "names": self.names,
            "indices": self.indices,
            "probabilities": self.probabilities,
        }


def to_device(images: Any, device: torch.device) -> Any:
    """A batch tensor, or (nested) lists of image tensors, on ``device``."""
    if isinstance(images, list):
        return [to_device(image, device) for image in images]
    return images.to(device, non_blocking=True)


@dataclass
class Scorer:
    """The model, the protocol and the class index that turn batches into predictions."""

    model: LoadedModel
    protocol: TestProtocol
    normalizer: BatchNormalizer
    classes: list[str]
    names: list[str]
    topk: int
    device: torch.device

    def top(self, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(probabilities, indices) of the ``topk`` classes of each row, the largest first."""
        return scores.topk(min(self.topk, scores.shape[-1]), dim=-1)

    def predict(self, batch: Batch, files: list[str]) -> list[Prediction]:
        if batch.images is None:
            return []
        images = normalize_nested(self.normalizer, to_device(batch.images, self.device))
        with torch.inference_mode():
            scores, _ = self.protocol.scores(self.model.net, images)
        probabilities, indices = self.top(scores.float().cpu())
        return [
            Prediction(
                files[position],
                idx.tolist(),
                [self.classes[i] for i in idx.tolist()],
                [self.names[i] for i in idx.tolist()],
                [round(p, 6) for p in prob.tolist()],
            )
            for position, prob, idx in zip(batch.positions, probabilities, indices)
        ]
