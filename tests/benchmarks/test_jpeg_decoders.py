"""benchmarks/jpeg_decoders.py cannot rot: a seconds-long run through every strategy, the table and the JSON.
Nothing is timed here; the figures are in docs/data.md."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "jpeg_decoders.py"


def test_every_strategy_runs_and_the_json_has_every_figure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bench_jpeg_decoders", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    out = tmp_path / "decoders.json"
    assert module.main(["--images", "6", "--repeats", "1", "--data", str(tmp_path / "jpegs"), "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["images"] == 6 and set(record["speedup_vs_torchvision"]) == set(module.STRATEGIES)
    assert all(v["decode"] > 0 and v["decode_and_view"] > 0 for v in record["median_seconds_per_image"].values())
    assert record["speedup_vs_torchvision"]["torchvision"]["decode"] == pytest.approx(1.0)
    assert "| decode_rgb |" in capsys.readouterr().out
