"""The report's table for timm backbones: global pooling against SPP per backbone, spreads over seeds, the gain
paired by seed, the full image; and no paper tables for such runs."""

from __future__ import annotations

from pathlib import Path

from spp_cls.reporting import build_report
from tests.reporting.factory import make_run
from tests.reporting.test_report import row, table


def backbone_sweep(root: Path) -> None:
    """resnet18 and convnext_tiny, global pooling and SPP {3,2,1}, seeds 0-1, each tested on the full image."""
    errors = {
        ("resnet18", False): [0.40, 0.44],
        ("resnet18", True): [0.38, 0.45],
        ("convnext_tiny", False): [0.50, 0.52],
        ("convnext_tiny", True): [0.47, 0.48],
    }
    for (backbone, spp), top1s in errors.items():
        for seed, top1 in enumerate(top1s):
            make_run(
                root / f"{backbone}-{spp}-{seed}",
                arch=backbone,
                spp=spp,
                pyramid=(3, 2, 1),
                seed=seed,
                top1=top1,
                top5=0.1,
                data="synthetic",
                task="backbones",
                config={"model": {"backbone": backbone}},
                evals={"full": (top1 - 0.01, 0.1)},
            )


def test_global_pooling_against_spp_per_backbone(tmp_path: Path) -> None:
    backbone_sweep(tmp_path)
    markdown = build_report([tmp_path]).markdown
    rows = table(markdown, "**Global pooling vs SPP per backbone")
    assert rows[0][:3] == ["backbone", "head", "top-1 % (val)"]
    assert row(rows, "resnet18") == [
        "resnet18",
        "global pooling",
        "42.00 ± 2.83 (2)",
        "10.00 ± 0.00 (2)",
        "41.00 ± 2.83 (2)",
        "",
        "",
    ]
    spp = next(r for r in rows if r[:2] == ["resnet18", "SPP {3,2,1}"])
    assert spp[5:] == ["0: +2.00, 1: -1.00", "+0.50 ± 2.12 (2)"]
    convnext = next(r for r in rows if r[:2] == ["convnext_tiny", "SPP {3,2,1}"])
    assert convnext[6] == "+3.50 ± 0.71 (2)"
    assert "**Table 2" not in markdown and "**SPP vs no SPP" not in markdown  # no paper numbers for these
