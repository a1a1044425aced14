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
    runs = table(markdown, "Paths relative to")
    assert runs[0][:3] == ["run", "network", "arm"] and len(runs) == 9
    assert {r[2] for r in runs[1:]} == {"global pooling", "SPP single-size"}  # not the paper's "no SPP"


def test_settings_of_backbone_runs_leave_out_the_paper_networks_rows(tmp_path: Path) -> None:
    """Table 1's widths, fc6/fc7, the LRN and pool5's bins belong to the paper's networks: a backbone run's
    settings table names its own width, head and epochs instead, with no paper value beside them."""
    for spp in (False, True):
        make_run(
            tmp_path / f"resnet18-{spp}",
            arch="resnet18",
            spp=spp,
            pyramid=(3, 2, 1),
            data="synthetic",
            task="backbones",
            epochs=4,
            config={
                "model": {
                    "backbone": "resnet18",
                    "width": 0.125,
                    "fc_dim": 256,
                    "dropout": 0.0,
                    "lrn": "within_channel",
                }
            },
            metrics={"bins": 14, "fc6_inputs": 896},
        )
    markdown = build_report([tmp_path]).markdown
    rows = {r[0]: r[1:] for r in table(markdown, "**Setting vs the paper's")[1:]}
    assert rows["backbone width (× timm's channels)"] == ["0.125", "– (the paper's networks only)"]
    assert rows["backbone head after pooling"][0] == "fc 256 → ReLU → fc8, dropout 0"
    assert rows["backbone epochs"][0] == "4"
    for paper_only in ("width (× Table 1's channels)", "fc6/fc7", "dropout", "LRN", "epochs"):
        assert paper_only not in rows
    assert not [name for name in rows if "bins / fc6 input" in name]
    assert "LRN" not in markdown.split("**Metric")[0]  # not listed as "as in the paper" either
    assert "10-view" not in markdown  # no paper numbers to compare protocols with
