"""Multi-view testing on full-image feature maps (paper §3.1.5): the conv layers run once per image, scale
and mirror; every view window is SPP-pooled on the feature map, never cropped from the image. A timm backbone
with its own global pooling (``model.spp=false``) pools each window's cells with that pooling instead.

All windows of a group of same-size images are pooled in one ``torchvision.ops.roi_pool`` call per pyramid
level. ``roi_pool`` with integer feature-map boxes [x1, x2] splits a box of a = x2 - x1 + 1 cells into bins
floor(i a / n) .. ceil((i + 1) a / n) - 1: the same bins as the SPP layer (tested against it). Memory is
bounded twice: images go through the conv layers in chunks of at most ``chunk_pixels`` input pixels, and
windows go through pooling and the fc layers in chunks of at most ``chunk_views``, so peak memory does not
grow with the number of views.

Precision (autocast, ``bf16-mixed``): the feature maps come out of the conv layers in bfloat16, which
torchvision's ``roi_pool`` has no kernel for; it pools a float32 copy, and hands the pooled vectors back in the
maps' dtype (max pooling only selects values, so nothing is rounded either way). The box rows are float32
whatever the maps are (they carry map indices, which bfloat16 holds exactly only up to 256), and the softmax
scores and their sums are float32: ``index_add_`` takes one dtype, and a sum of up to 98 views needs more than
bfloat16's 8 significant bits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import torch
from torchvision.ops import roi_pool

from spp_cls.evaluation.windows import map_window, window_positions
from spp_cls.models.network import SppNet
from spp_cls.models.timm_backbone import TimmBackboneNet

Net = Union[SppNet, TimmBackboneNet]


def features(model: Net, images: torch.Tensor) -> torch.Tensor:
    """The last conv map (the model's own size check is for whole inputs, not needed here)."""
    return model.features(images)


def head_scores(model: Net, pooled: torch.Tensor) -> torch.Tensor:
    """Softmax (float32) of fc6-fc8 applied to SPP vectors."""
    return model.fc8(model.pre_logits(pooled)).softmax(dim=-1, dtype=torch.float32)


def pool_boxes(feature_maps: torch.Tensor, boxes: torch.Tensor, levels: Sequence[int]) -> torch.Tensor:
    """SPP vectors of the boxes (K, 5: map index, x1, y1, x2, y2, inclusive cells), in the SPP layer's layout
    and the maps' dtype (pooled in float32: see the module docstring)."""
    maps, boxes = feature_maps.float(), boxes.float()
    pooled = [roi_pool(maps, boxes, output_size=(n, n), spatial_scale=1.0).flatten(1) for n in levels]
    return torch.cat(pooled, 1).to(feature_maps.dtype)


@dataclass(frozen=True)
class FeatureMapViews:
    """The views of one scale: ``layout`` windows of ``window`` pixels on the image and on its mirror."""

    layout: str
    window: int
    mapping: str
    chunk_views: int = 512
    chunk_pixels: int = 4_000_000

    def score_sums(self, model: Net, images: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Sum over this scale's views of the softmax scores of each image (N, 3, H, W) and the views per image."""
        height, width = images.shape[-2:]
        windows = window_positions(height, width, self.window, self.layout)
        per_chunk = max(1, self.chunk_pixels // (2 * height * width))
        totals = []
        for start in range(0, images.shape[0], per_chunk):
            chunk = images[start : start + per_chunk]
            maps = features(model, torch.cat([chunk, chunk.flip(-1)]))
            totals.append(self._pooled_scores(model, maps, windows, chunk.shape[0]))
        return torch.cat(totals), 2 * len(windows)

    def _pooled_scores(self, model: Net, maps: torch.Tensor, windows: list, count: int) -> torch.Tensor:
        cells = [map_window(w, model.arch, maps.shape[-2], maps.shape[-1], self.mapping) for w in windows]
        rows = torch.tensor(
            [(m, *c) for m in range(maps.shape[0]) for c in cells], dtype=torch.float32, device=maps.device
        )
        owner = torch.arange(maps.shape[0], device=maps.device).repeat_interleave(len(cells)) % count
        sums = torch.zeros(count, model.num_classes, dtype=torch.float32, device=maps.device)
        if not model.spp:  # a timm backbone's global pooling: each window's cells through the backbone's own head
            for x1, y1, x2, y2 in cells:
                scores = head_scores(model, model.pool(maps[..., y1 : y2 + 1, x1 : x2 + 1]).flatten(1))
                sums.index_add_(0, torch.arange(maps.shape[0], device=maps.device) % count, scores)
            return sums
        for start in range(0, rows.shape[0], self.chunk_views):
            scores = head_scores(model, pool_boxes(maps, rows[start : start + self.chunk_views], model.pyramid))
            sums.index_add_(0, owner[start : start + self.chunk_views], scores)
        return sums
