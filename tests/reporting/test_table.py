"""The results table of the README's main job."""

from __future__ import annotations

import json
from pathlib import Path

from spp_cls.reporting import collect_results, format_columns, format_table
from spp_cls.reporting.__main__ import main


def write(path: Path, **result: object) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "metrics.json").write_text(json.dumps(result))


def test_table_lists_each_evaluation(tmp_path: Path, capsys) -> None:
    common = dict(protocol="center", images=600, num_classes=10)
    write(tmp_path / "0/eval", model="zf5_spp", pyramid=[6, 3, 2, 1], top1_err=0.1234, top5_err=0.01, **common)
    write(tmp_path / "1/eval", model="zf5", pyramid=None, top1_err=0.5, top5_err=0.1, **common)
    write(tmp_path / "0", model="zf5_spp", **{"val/top1_err": 0.1})  # a training metrics.json: not a row
    rows = collect_results(tmp_path)
    assert [r["model"] for r in rows] == ["zf5_spp", "zf5"]
    table = format_table(rows).splitlines()
    assert table[0].split() == [
        "model",
        "SPP",
        "levels",
        "protocol",
        "images",
        "top-1",
        "err",
        "%",
        "top-5",
        "err",
        "%",
    ]
    assert table[2].split() == ["zf5_spp", "{6,3,2,1}", "center", "600", "12.34", "1.00"]
    assert table[3].split() == ["zf5", "-", "center", "600", "50.00", "10.00"]
    assert "chance level with 10 classes: top-1 error 90.00%" in table[-1]
    assert main([str(tmp_path)]) == 0 and "zf5_spp" in capsys.readouterr().out
    assert main([str(tmp_path / "nothing")]) == 1


def test_protocols_as_rows_or_columns(tmp_path: Path, capsys) -> None:
    def protocol(top1: float, top5: float) -> dict:
        return dict(top1_err=top1, top5_err=top5, images=600, views_per_image=1.0, images_per_s=1.0, views_per_s=1.0)

    write(
        tmp_path / "spp/eval",
        model="zf5_spp",
        pyramid=[6, 3, 2, 1],
        protocol="center",
        num_classes=10,
        images=600,
        top1_err=0.2,
        top5_err=0.05,
        protocols={"center": protocol(0.2, 0.05), "full": protocol(0.15, 0.04), "multiview": protocol(0.1, 0.02)},
    )
    write(
        tmp_path / "base/eval",
        model="zf5",
        pyramid=None,
        protocol="center",
        num_classes=10,
        images=600,
        top1_err=0.3,
        top5_err=0.06,
        protocols={"center": protocol(0.3, 0.06)},
    )
    rows = collect_results(tmp_path)
    assert [(r["model"], r["protocol"]) for r in rows] == [
        ("zf5", "center"),
        ("zf5_spp", "center"),
        ("zf5_spp", "full"),
        ("zf5_spp", "multiview"),
    ]
    table = format_columns(rows).splitlines()
    assert "center top-1/top-5 %" in table[0] and "multiview top-1/top-5 %" in table[0]
    assert table[2].split() == ["zf5", "-", "600", "30.00", "/", "6.00", "-", "-"]
    assert table[3].split() == [
        "zf5_spp",
        "{6,3,2,1}",
        "600",
        "20.00",
        "/",
        "5.00",
        "15.00",
        "/",
        "4.00",
        "10.00",
        "/",
        "2.00",
    ]
    assert main([str(tmp_path), "--columns"]) == 0 and "multiview" in capsys.readouterr().out
