"""benchmarks/data_throughput.py cannot rot: a seconds-long run through every pipeline, worker path, the
breakdown, the pixel arithmetic and the JSON; its image-size distribution; its paired ratios; its refusals.

Nothing here times anything: the benchmark's figures are in the docs, not asserted.
"""

from __future__ import annotations

import importlib.util
import json
import statistics
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "data_throughput.py"
RATIO_KEYS = {
    "folders_vs_torchvision",
    "shards_vs_torchvision",
    "folders_vs_bare",
    "shards_vs_bare",
    "resized_shards_vs_shards",
}


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_data_throughput", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


dt = _load()


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and value > 0


def test_smoke_run_covers_every_pipeline_breakdown_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out" / "raw.json"
    tiny = ["--images", "12", "--classes", "2", "--batch-size", "4", "--batches", "1", "--warmup", "1"]
    code = dt.main(
        [*tiny, "--repeats", "1", "--workers", "0", "1", "--breakdown", "5", "--pixels", "6"]
        + ["--data", str(tmp_path / "data"), "--json", str(out)]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "| `resized_shards_vs_shards` (c2)/(c) |" in printed and "Per-sample breakdown, ours (c2)" in printed
    raw = json.loads(out.read_text())
    assert set(raw["ratios"]) == RATIO_KEYS and all(_positive(v) for v in raw["ratios"].values())
    assert raw["ratios_workers"] == 1 and raw["ratios"] == raw["ratios_by_workers"]["1"]
    assert set(raw["ratios_by_workers"]) == {"0", "1"}
    assert all(
        set(r) == RATIO_KEYS and all(_positive(v) for v in r.values()) for r in raw["ratios_by_workers"].values()
    )
    assert set(raw["per_core"]) == {"a", "b", "c", "c2", "d"}
    assert all(_positive(v) for by_workers in raw["per_core"].values() for v in by_workers.values())
    assert len(raw["measurements"]) == 2 * 5 and all(m["images"] == 4 for m in raw["measurements"])
    assert set(raw["breakdown_ms_per_image"]) == {
        "ours (b)",
        "baseline (a)",
        "ours (c), shard reader",
        "ours (c2), shard reader",
    }
    assert all(_positive(v) for stages in raw["breakdown_ms_per_image"].values() for v in stages.values())
    floor = raw["view_floor"]
    assert "Floor of a CPU view" in printed and (floor["images"], floor["repeats"]) == (5, 1)
    assert all(_positive(floor[k]) for k in ("bare_ms", "view_ms", "view_vs_bare"))
    pixels = raw["pixel_arithmetic"]
    assert pixels["images"] == 6 and pixels["bound_resized_vs_shards"] >= 1.0  # (c2) never decodes more
    assert raw["data"]["files"] == 12 and raw["data"]["shard_kb"]["c2"] < raw["data"]["shard_kb"]["c"]
    assert raw["goals_met"] in (True, False) and _positive(raw["normalize_ms_per_batch"])


def test_image_sizes_follow_imagenet() -> None:
    """The documented facts: median 500x375, about 1 % under 200 px short side, a few % over 1000 px long side
    (up to thousands), about a fifth portrait; deterministic from the seed."""
    sizes = [dt.image_size(np.random.default_rng(seed)) for seed in range(4000)]
    assert sizes[:50] == [dt.image_size(np.random.default_rng(seed)) for seed in range(50)]
    assert statistics.median(w for w, _ in sizes) == 500 and statistics.median(h for _, h in sizes) == 375
    shorts, longs = [min(s) for s in sizes], [max(s) for s in sizes]
    assert 0.005 < sum(s < 200 for s in shorts) / len(sizes) < 0.02
    assert 0.02 < sum(x > 1000 for x in longs) / len(sizes) < 0.05 and max(longs) > 2000
    assert 0.15 < sum(h > w for w, h in sizes) / len(sizes) < 0.25
    assert len(set(sizes)) > 500  # a distribution, not a handful of sizes


def test_ratios_are_medians_of_paired_repeats() -> None:
    """A repeat slowed down for every pipeline alike must not move the ratio (the ratio of medians would)."""

    def m(pipeline: str, repeat: int, rate: float) -> object:
        return dt.Measurement(pipeline, 2, repeat, 1, 1, int(rate), 1.0)

    summary = dt.Summary([m("b", 0, 90), m("a", 0, 30), m("b", 1, 40), m("a", 1, 20), m("b", 2, 10), m("a", 2, 4)])
    assert summary.ratio("b", "a", 2) == pytest.approx(2.5)  # ratios 3, 2, 2.5; ratio of medians: 2
    assert summary.median("b", 2) == 40 and summary.spread("a", 2) == (4, 30)
    ratios = summary.ratios(2)
    assert ratios["folders_vs_torchvision"] == pytest.approx(2.5) and ratios["shards_vs_bare"] is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message where CUDA is missing")
def test_cuda_without_a_gpu_fails_at_once_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no CUDA device"):
        dt.main(["--device", "cuda", "--data", str(tmp_path)])
    assert not any(tmp_path.iterdir())  # refused before any data was made


def test_too_few_images_for_the_timed_batches_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="less than one epoch"):
        dt.main(["--images", "100", "--workers", "1", "--data", str(tmp_path)])


def test_gpu_decoding_pipeline_runs_with_the_cpu_decoder(tmp_path: Path) -> None:
    """(e) is what training does with data.decode_device=cuda; on the CPU it must deliver the views of (b)."""
    split_dir = dt.ensure_jpegs(tmp_path / "data", 8, 2, 0, 1)
    gpu = dt.gpu_decode_loader(split_dir, 4, 0, 0, device="cpu")
    batches = list(gpu)
    assert [dt.count_images(b) for b in batches] == [4, 4]
    assert all(b["image"].dtype == torch.uint8 and b["image"].shape[1:] == (3, dt.SIZE, dt.SIZE) for b in batches)
    images, seconds = dt.measure(dt.gpu_decode_loader(split_dir, 4, 0, 0, device="cpu"), 1, 1)
    assert images == 4 and seconds > 0
