"""The paper's ImageNet classification numbers (error %), typed from /work/shared/reference/sppnet-paper.md §6
(arXiv 1406.4729v4), so the report can set them beside ours. Keep this file data only.

Keys use this project's names: networks as ``model.arch``; arms as in :mod:`spp_cls.reporting.runs`
(``no_spp``, ``single``, ``multi``, ``random``); pyramids as tuples of levels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

#: the paper's networks in its column order, with the names it prints
NETWORKS: dict[str, str] = {"zf5": "ZF-5", "convnet5": "Convnet*-5", "overfeat5": "Overfeat-5",
                            "overfeat7": "Overfeat-7"}
#: Tables 2-4 use the 4-level 50-bin pyramid
PAPER_PYRAMID: tuple[int, ...] = (6, 3, 2, 1)
#: data.name values that are ImageNet 2012 (the only data the paper's numbers are about)
IMAGENET_DATA: frozenset[str] = frozenset({"imagenet", "imagenet_wds"})

#: the paper's training setting, to list where a run departs from it (§3, §4; its epochs per network are
#: spp_cls.config.schema.paper_epochs, which the experiment configs use)
PAPER_CROP = 224
PAPER_MULTI_SIZES: tuple[int, ...] = (224, 180)
PAPER_RANDOM_RANGE: tuple[int, int] = (180, 224)
PAPER_FC_DIM = 4096


@dataclass(frozen=True)
class PaperError:
    """Top-1 / top-5 error % as printed (None where the paper gives no number)."""

    top1: Optional[float]
    top5: Optional[float]


#: Table 2: ImageNet 2012 val, standard 10-view; (arm, arch) -> error
TABLE2: dict[tuple[str, str], PaperError] = {
    ("no_spp", "zf5"): PaperError(35.99, 14.76),
    ("no_spp", "convnet5"): PaperError(34.93, 13.92),
    ("no_spp", "overfeat5"): PaperError(34.13, 13.52),
    ("no_spp", "overfeat7"): PaperError(32.01, 11.97),
    ("single", "zf5"): PaperError(34.98, 14.14),
    ("single", "convnet5"): PaperError(34.38, 13.54),
    ("single", "overfeat5"): PaperError(32.87, 12.80),
    ("single", "overfeat7"): PaperError(30.36, 11.12),
    ("multi", "zf5"): PaperError(34.60, 13.64),
    ("multi", "convnet5"): PaperError(33.94, 13.33),
    ("multi", "overfeat5"): PaperError(32.26, 12.33),
    ("multi", "overfeat7"): PaperError(29.68, 10.95),
}
#: Table 2's row letters
TABLE2_ROWS: dict[str, str] = {"no_spp": "(a)", "single": "(b)", "multi": "(c)"}

#: numbers given in the text (10-view): (arm, arch, pyramid) -> error
EXTRAS: dict[tuple[str, str, tuple[int, ...]], PaperError] = {
    ("single", "zf5", (4, 3, 2, 1)): PaperError(35.06, 14.04),  # §2 ablation: 30-bin pyramid
    ("random", "overfeat7", (6, 3, 2, 1)): PaperError(30.06, 10.96),  # §4: s uniform in [180, 224] per epoch
}

#: Table 3: single view, top-1 error %; (arm, arch) -> (1 crop = center, 1 full = full)
TABLE3: dict[tuple[str, str], tuple[float, float]] = {
    ("single", "zf5"): (38.01, 37.55),
    ("multi", "zf5"): (37.57, 37.07),
    ("single", "overfeat7"): (33.18, 32.72),
    ("multi", "overfeat7"): (32.57, 31.25),
}

#: Table 4 and §5(c): SPP Overfeat-7 multi-size; the network and its test views -> error
TABLE4_NETWORK: tuple[str, str] = ("multi", "overfeat7")
TABLE4_TEN_VIEW = PaperError(29.68, 10.95)
#: views per image of the multi-view protocol -> error (96 = 6 scales without the 2 full views: top-5 only)
TABLE4_MULTIVIEW: dict[int, PaperError] = {98: PaperError(27.86, 9.14), 96: PaperError(None, 9.36)}


def paper_error(arch: str, arm: str, pyramid: Optional[tuple[int, ...]]) -> Optional[PaperError]:
    """The paper's 10-view error for a network trained this way, or None where it has no such number."""
    if arm == "no_spp" or pyramid == PAPER_PYRAMID:
        found = TABLE2.get((arm, arch))
        if found is not None:
            return found
    return EXTRAS.get((arm, arch, pyramid or PAPER_PYRAMID))
