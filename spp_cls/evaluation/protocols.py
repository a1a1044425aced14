"""Test protocols: how a validation image becomes views and how view scores become a prediction.

A protocol owns both halves so that new ones (10-view, full image, multi-view on feature maps) plug in
without touching the training or evaluation loops: ``view`` maps a decoded uint8 image to the sample the
loader batches (see ``spp_cls.data.transforms``), ``scores`` maps a normalised batch of those to class scores.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable

import torch
from torch import nn

from spp_cls.data.transforms import CenterView, PipelineSettings


class TestProtocol(ABC):
    """One way of testing a classifier on an image."""

    name: str = ""
    __test__ = False  # not a pytest test class

    def __init__(self, settings: PipelineSettings) -> None:
        self.settings = settings

    @abstractmethod
    def view(self) -> Callable:
        """``(image uint8 (3, H, W), size, rng) -> {"image": ...}``, with ``decode_short_side(size)``."""

    @abstractmethod
    def scores(self, model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        """Class scores (B, num_classes) for a batch of transformed samples; higher is better."""


class CenterCrop(TestProtocol):
    """The 1-view protocol: the central ``crop_size`` square of the image resized to ``resize_size``."""

    name = "center"

    def view(self) -> Callable:
        return CenterView(self.settings)

    def scores(self, model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        return model(batch).softmax(dim=-1)


PROTOCOLS: dict[str, type[TestProtocol]] = {cls.name: cls for cls in (CenterCrop,)}


def build_protocol(name: str, settings: PipelineSettings) -> TestProtocol:
    """Instantiate a protocol by name, with an error that lists the known ones."""
    try:
        return PROTOCOLS[name](settings)
    except KeyError:
        raise ValueError(f"unknown test protocol {name!r}; choose one of {sorted(PROTOCOLS)}") from None
