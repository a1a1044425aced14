"""benchmarks/multiview.py cannot rot: a seconds-long run of a tiny net through the three methods, the stage
timing of (a) and the JSON.

Nothing here times anything: the benchmark's figures are in the docs, not asserted.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

import spp_cls.evaluation.multiview as mv_module

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "multiview.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_multiview", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


mv = _load()


def test_smoke_run_covers_every_method_the_stages_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    features = mv_module.features
    out = tmp_path / "raw.json"
    tiny = [
        "--width",
        "0.0625",
        "--fc-dim",
        "32",
        "--num-classes",
        "10",
        "--images",
        "1",
        "--repeats",
        "1",
        "--threads",
        "1",
    ]
    assert mv.main([*tiny, "--chunk", "48", "--json", str(out)]) == 0
    assert mv_module.features is features  # the stage timer's wrappers are gone again
    printed = capsys.readouterr().out
    assert "Stages of (a)" in printed and "not the paper's full-size net" in printed
    raw = json.loads(out.read_text())
    assert raw["views_per_image"] == 96 and raw["scales"] == [224, 256, 300, 360, 448, 560]
    assert all(raw["median_seconds_per_image"][m] > 0 for m in ("a", "b", "c"))
    assert all(len(raw["seconds_per_image"][m]) == 1 for m in ("a", "b", "c"))
    assert all(raw["ratios"][k] > 0 for k in ("b_over_a", "a_over_c", "conv_pixel_ratio"))
    stages = raw["stages_median_run_seconds_per_image"]
    assert stages[mv.CONV_STAGE] > 0 and stages[mv.FC_STAGE] > 0 and stages["total"] > 0
    assert raw["agreement"]["cosine"] > 0.5  # (a) and (b) score the same views, up to border effects


def test_impossible_sizes_are_refused() -> None:
    with pytest.raises(SystemExit):
        mv.main(["--fc-dim", "0"])
