"""What the window -> feature-map mapping and the size checks need to know of a network's conv layers.

The paper's networks (``Architecture``) compute these from their layer specs; a timm backbone
(``BackboneGeometry``) from timm's ``feature_info`` and measurements. Both satisfy ``MapGeometry``, so the
multi-view protocol, the export and the size checks treat them alike.
"""

from __future__ import annotations

from typing import Protocol


class MapGeometry(Protocol):
    """The last conv map's geometry: cell j is centred at image pixel ``first_center + total_stride * j``."""

    @property
    def name(self) -> str: ...

    @property
    def total_stride(self) -> int: ...

    @property
    def first_center(self) -> float: ...

    def feature_size(self, size: int) -> int:
        """Side of the last conv map for an input side ``size``; 0 if the input is too small."""
        ...

    def min_input_size(self, map_size: int = 1) -> int:
        """Smallest input side that leaves a ``map_size`` x ``map_size`` map."""
        ...
