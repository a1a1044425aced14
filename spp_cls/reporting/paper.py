"""The paper's ImageNet classification numbers (error %) and training setting, typed from K. He, X. Zhang, S. Ren
and J. Sun, "Spatial Pyramid Pooling in Deep Convolutional Networks for Visual Recognition", TPAMI 2015
(arXiv 1406.4729v4): §3.1 (training, Table 1's networks, Tables 2 and 3), §3.1.5 (multi-view testing, Table 4),
so the report can set them beside ours and list where a run departs from that setting. Keep this file data only.

Keys use this project's names: networks as ``model.arch``; arms as in :mod:`spp_cls.reporting.runs`
(``no_spp``, ``single``, ``multi``, ``random``); pyramids as tuples of levels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

#: the paper's networks in its column order, with the names it prints
NETWORKS: dict[str, str] = {
    "zf5": "ZF-5",
    "convnet5": "Convnet*-5",
    "overfeat5": "Overfeat-5",
    "overfeat7": "Overfeat-7",
}
#: Tables 2-4 use the 4-level 50-bin pyramid
PAPER_PYRAMID: tuple[int, ...] = (6, 3, 2, 1)
#: data.name values that are ImageNet 2012 (the only data the paper's numbers are about)
IMAGENET_DATA: frozenset[str] = frozenset({"imagenet", "imagenet_wds"})

#: the paper's training setting, to list where a run departs from it (§3.1, §3.2; its epochs per network are
#: spp_cls.config.schema.paper_epochs, which the experiment configs use)
PAPER_CROP = 224
PAPER_RESIZE = 256  # short side before cropping
#: "a 224x224 crop is picked from the center or the four corners" (data.train_crop=five, read literally)
PAPER_TRAIN_CROP = "five"
PAPER_MULTI_SIZES: tuple[int, ...] = (224, 180)
PAPER_RANDOM_RANGE: tuple[int, int] = (180, 224)
PAPER_WIDTH = 1.0  # Table 1's channel counts
PAPER_FC_DIM = 4096
PAPER_DROPOUT = 0.5  # not stated; Krizhevsky et al.'s ratio, and the authors' released ZF-5
#: the rate starts at 0.01 and is divided by 10 twice when the error plateaus (no epochs given)
PAPER_SCHEDULER = "plateau"
PAPER_LR_FACTOR = 0.1
PAPER_LR_DROPS = 2
#: not stated in the paper: Krizhevsky et al.'s recipe, which it follows, and the released ZF-5 prototxt
PAPER_BATCH = 128
PAPER_LR = 0.01
PAPER_MOMENTUM = 0.9
PAPER_WEIGHT_DECAY = 5e-4
#: the per-pixel mean image subtracted from 0-255 input (appendix; data.normalization=mean_image)
PAPER_NORMALIZATION = "mean_image"
#: the LRN of the authors' released Caffe ZF-5 (the paper gives none): within-channel, 3x3, alpha 5e-5, beta 0.75,
#: on 0-255 input; this project's equivalent on normalised input is model.lrn_input_scale = 255 x data.std
PAPER_LRN = "within_channel"
#: bins of the last pool that fc6 reads: the no-SPP networks' pool5 gives 6x6; the SPP pyramids their sum of
#: squares ({6,3,2,1}: 50; §3.1.2's control {4,3,2,1}: 30)
PAPER_NO_SPP_BINS = 36
PAPER_PYRAMIDS: tuple[tuple[int, ...], ...] = ((6, 3, 2, 1), (4, 3, 2, 1))
#: Table 1: channels of the last conv layer (fc6 input = bins x channels: 9,216 / 12,800 for ZF-5)
PAPER_CHANNELS: dict[str, int] = {"zf5": 256, "convnet5": 256, "overfeat5": 512, "overfeat7": 512}


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

#: Table 4 and §3.1.5: SPP Overfeat-7 multi-size; the network and its test views -> error
TABLE4_NETWORK: tuple[str, str] = ("multi", "overfeat7")
TABLE4_TEN_VIEW = PaperError(29.68, 10.95)
#: the multi-view protocol: 6 scales (short sides at a 224 crop), 18 windows a scale (center, 4 corners, 4 side
#: middles, each mirrored; 6 distinct at s = 224): 5 x 18 + 6 = 96 views, + the 2 full-image views = 98
TABLE4_SCALES: tuple[int, ...] = (224, 256, 300, 360, 448, 560)
TABLE4_LAYOUT = "eighteen"
#: with the 2 full-image views (protocol.multiview.full_views) -> (views, error); without them top-5 only
TABLE4_MULTIVIEW: dict[bool, tuple[int, PaperError]] = {
    True: (98, PaperError(27.86, 9.14)),
    False: (96, PaperError(None, 9.36)),
}


def paper_error(arch: str, arm: str, pyramid: Optional[tuple[int, ...]]) -> Optional[PaperError]:
    """The paper's 10-view error for a network trained this way, or None where it has no such number."""
    if arm == "no_spp" or pyramid == PAPER_PYRAMID:
        found = TABLE2.get((arm, arch))
        if found is not None:
            return found
    return EXTRAS.get((arm, arch, pyramid or PAPER_PYRAMID))


def paper_bins(arm: str, pyramid: Optional[tuple[int, ...]]) -> Optional[int]:
    """The bins fc6 reads in the paper for an arm (None for a pyramid the paper did not train)."""
    if arm == "no_spp":
        return PAPER_NO_SPP_BINS
    return sum(n * n for n in pyramid) if pyramid in PAPER_PYRAMIDS else None


def table4_multiview(
    full_views: bool, scales: Optional[tuple[int, ...]], layout: str, window: Optional[int], crop_size: int
) -> Optional[tuple[int, PaperError]]:
    """The paper's (views, error) for a multi-view test configured so (``protocol.multiview``); None unless it is
    the paper's: its 6 scales (as given or scaled to the crop), 18 windows a scale of the crop's size."""
    paper_scales = tuple(round(s * crop_size / 224) for s in TABLE4_SCALES)
    if (scales or paper_scales) != paper_scales or layout != TABLE4_LAYOUT or (window or crop_size) != crop_size:
        return None
    return TABLE4_MULTIVIEW[bool(full_views)]
