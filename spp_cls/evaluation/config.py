"""``protocol.*``: the settings of the test protocols, declared once.

``ProtocolConfig``/``MultiviewConfig`` are the structured-config nodes that ``spp_cls/config/schema.py``
composes into the run config and the objects the protocols receive (``OmegaConf.to_object``). Their values
are checked here (``protocol_errors``), by the start-up validation (a wrong value must not wait for the end of
a training run to fail) and again when a protocol is built (``protocols.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from spp_cls.evaluation.windows import LAYOUTS, MAPPINGS

#: the crop size of the paper's setting, to which its other sizes (scales, the multi-size 180) refer
PAPER_CROP = 224
#: the paper's test scales (short sides) at ``PAPER_CROP`` (Table 4)
PAPER_SCALES = (224, 256, 300, 360, 448, 560)


def scaled_size(size: int, crop_size: int) -> int:
    """A size of the paper's 224-pixel setting scaled to another crop size (180 at 224 -> 103 at 128): the one
    place of this rule, for the test scales here and the multi-size training size in the config."""
    return round(int(size) * int(crop_size) / PAPER_CROP)


@dataclass
class MultiviewConfig:
    """``protocol.multiview``: sizes left as None follow the data (the paper's sizes x crop_size / 224)."""

    scales: Optional[List[int]] = None  # default: 224, 256, 300, 360, 448, 560 (scaled)
    layout: str = "eighteen"  # eighteen: center, corners, side middles | ten: center, corners (each + mirror)
    window: Optional[int] = None  # default: data.crop_size
    mapping: str = "paper"  # paper: the appendix rule | crop: the cells a crop of the window computes
    full_views: bool = True  # + the 2 full-image views (98 in the paper)
    chunk_views: int = 512  # windows pooled and classified at once
    chunk_pixels: int = 4_000_000  # input pixels through the conv layers at once

    def resolved_scales(self, crop_size: int) -> tuple[int, ...]:
        """The scales to test at: ``scales``, or the paper's scaled to ``crop_size``."""
        return tuple(self.scales) if self.scales else tuple(scaled_size(s, crop_size) for s in PAPER_SCALES)


@dataclass
class ProtocolConfig:
    """``protocol``: settings of the test protocols (only the multi-view ones have any)."""

    multiview: MultiviewConfig = field(default_factory=MultiviewConfig)


def protocol_errors(protocol: Any, crop_size: int, prefix: str = "protocol.") -> list[str]:
    """What is wrong with the ``protocol`` settings (a ``ProtocolConfig`` or its config node) for a run whose
    data has ``crop_size``, one message per problem, each naming its key under ``prefix``."""
    mv, key, errors = protocol.multiview, f"{prefix}multiview.", []
    if mv.layout not in LAYOUTS:
        errors.append(f"{key}layout must be one of {sorted(LAYOUTS)}; got {mv.layout!r}")
    if mv.mapping not in MAPPINGS:
        errors.append(f"{key}mapping must be one of {list(MAPPINGS)}; got {mv.mapping!r}")
    for name in ("chunk_views", "chunk_pixels"):
        if getattr(mv, name) < 1:
            errors.append(f"{key}{name} must be >= 1; got {getattr(mv, name)}")
    window = mv.window if mv.window is not None else crop_size
    if window < 1:
        errors.append(f"{key}window must be >= 1 (or null: data.crop_size); got {mv.window}")
    scales = list(mv.scales) if mv.scales else [scaled_size(s, crop_size) for s in PAPER_SCALES]
    if min(scales) < window:
        errors.append(f"{key}scales {scales} must all be >= the window {window}")
    return errors
