"""The pieces of benchmarks/train_step.py: peak table, FLOP counts, batches, ratios, and each loop on a CPU.

Nothing here times anything: the benchmark's figures are in the README, not asserted.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
import timm
import torch
from torch import nn

import spp_cls  # noqa: F401  (registers the models in timm)

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "train_step.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_train_step", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


ts = _load()
TINY = argparse.Namespace(width=0.125, fc_dim=16, num_classes=5, batch=2, device="cpu")


@pytest.mark.parametrize(
    "name, precision, tflops",
    [
        ("NVIDIA H100 80GB HBM3", "bf16-mixed", 989.4),
        ("NVIDIA H100 PCIe", "16-mixed", 756.0),
        ("NVIDIA H200", "bf16-mixed", 989.4),
        ("NVIDIA H200 NVL", "bf16-mixed", 835.5),
        ("NVIDIA A100-SXM4-80GB", "32-true", 156.0),  # fp32 convolutions run on TF32 by default
    ],
)
def test_peak_flops_of_known_gpus(name: str, precision: str, tflops: float) -> None:
    assert ts.peak_flops(name, precision) == pytest.approx(tflops * 1e12)


def test_peak_flops_fp32_without_tf32_and_unknown_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    assert ts.peak_flops("NVIDIA A100-PCIE-40GB", "32-true") == pytest.approx(19.5e12)
    assert ts.peak_flops("Tesla T4", "16-mixed") is None


def _layer_flops(model: nn.Module, size: int) -> tuple[float, float]:
    """2 x multiply-adds of every conv and linear layer (from their weights and output sizes), and conv1's."""
    total, first = [0.0], []

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        positions = output.shape[-2] * output.shape[-1] if isinstance(module, nn.Conv2d) else 1
        flops = 2.0 * module.weight.numel() * positions * output.shape[0]
        total[0] += flops
        if not first:
            first.append(flops)

    for layer in model.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            layer.register_forward_hook(hook)
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, size, size))
    return total[0], first[0]


@pytest.mark.parametrize("name, size", [("zf5_spp", 224), ("zf5_spp", 180), ("overfeat7", 112)])
def test_image_flops_match_the_layers(name: str, size: int) -> None:
    """Forward: every conv and linear layer once. Training: forward + backward, whose input and weight gradients
    cost the forward twice over, except conv1's input gradient (the image needs none)."""
    case = ts.Case(name, (size,))
    cfg = ts.compose_config(case, TINY, [], "/tmp/unused")
    forward, training = ts.image_flops(cfg, size)
    model = timm.create_model(name, **ts.timm_kwargs(cfg))
    layers, conv1 = _layer_flops(model, size)
    assert forward == pytest.approx(layers, rel=1e-6)
    assert training == pytest.approx(3 * layers - conv1, rel=1e-6)


def test_full_width_zf5_forward_is_the_issue_figure() -> None:
    cfg = ts.compose_config(
        ts.Case("zf5_spp", (224,)),
        argparse.Namespace(**{**vars(TINY), "width": 1.0, "fc_dim": 4096, "num_classes": 1000}),
        [],
        "/tmp/unused",
    )
    forward, _ = ts.image_flops(cfg, 224)
    assert forward == pytest.approx(2.4e9, rel=0.02)  # "ZF-5 is about 2.4 GFLOP per 224 image forward"


def test_batches_are_loader_batches_alternating_sizes() -> None:
    batches = ts.make_batches(ts.Case("zf5_spp", (64, 48)), 3, 6, 5, torch.device("cpu"))
    assert [b["image"].shape[-1] for b in batches] == [64, 48, 64, 48, 64, 48]
    assert batches[0]["image"] is batches[4]["image"] and batches[0]["image"] is not batches[2]["image"]
    assert all(b["image"].dtype == torch.uint8 for b in batches)
    assert all(b["image"].is_contiguous(memory_format=torch.channels_last) for b in batches)  # as collate_images
    assert all(int(b["target"].max()) < 5 and int(b["skipped"]) == 0 for b in batches)


@pytest.mark.parametrize("channels_last, size", [(False, 64), (True, 224)])
def test_device_inputs_normalise_as_training_does(channels_last: bool, size: int, tmp_path: Path) -> None:
    cfg = ts.compose_config(ts.Case("zf5_spp", (size,)), TINY, [], str(tmp_path))
    switches = ts.Switches(
        **{**vars(ts.switches_from_config(cfg, torch.device("cpu"))), "channels_last": channels_last}
    )
    batch = ts.make_batches(ts.Case("zf5_spp", (size,)), 2, 1, 5, torch.device("cpu"))[0]
    x = ts.device_inputs(cfg, switches)(batch)
    mean = torch.tensor(list(cfg.data.mean)).view(1, 3, 1, 1)
    std = torch.tensor(list(cfg.data.std)).view(1, 3, 1, 1)
    torch.testing.assert_close(x, (batch["image"].float() / 255 - mean) / std)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    assert x.is_contiguous(memory_format=memory_format)


def test_ratios_are_medians_of_paired_repeats() -> None:
    """A repeat slowed down for every loop alike must not move the ratio (the ratio of medians would)."""

    def m(loop: str, repeat: int, speed: float) -> object:
        return ts.Measurement("c", loop, True, repeat, speed, 2.0 / speed, 0, 0.0)

    results = [
        m("ours", 0, 90),
        m("hand", 0, 100),
        m("ours", 1, 45),
        m("hand", 1, 50),
        m("ours", 2, 9),
        m("hand", 2, 10),
    ]
    summary = ts.summarize(results, "c", True, ("ours", "hand"))
    assert summary["ratios"]["hand"] == pytest.approx(0.9)
    assert summary["cpu_ratios"]["hand"] == pytest.approx(0.9)
    assert summary["speed"] == {"ours": 45, "hand": 50}


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("loop", ts.LOOPS)
def test_each_loop_runs_on_cpu(loop: str, train: bool, tmp_path: Path) -> None:
    case = ts.Case("zf5_spp", (64,))
    cfg = ts.compose_config(case, TINY, [], str(tmp_path))
    switches = ts.switches_from_config(cfg, torch.device("cpu"))
    batches = ts.make_batches(case, 2, 3, 5, torch.device("cpu"))
    window, _ = ts.RUNNERS[loop](cfg, switches, batches, 1, train)
    assert window.seconds > 0 and window.cpu_seconds > 0 and window.graphs == 0


def test_imagenets_class_count_composes(tmp_path: Path) -> None:
    """The benchmark's default ``--num-classes 1000`` (and gpu_check.py's): the embedded data set's generator,
    which has 12 classes, is not part of a run fed from memory, so its class-count check does not apply."""
    case = ts.Case("zf5_spp", (64,))
    cfg = ts.compose_config(case, argparse.Namespace(**{**vars(TINY), "num_classes": 1000}), [], str(tmp_path))
    data = ts.OnDeviceBatches(cfg, []).config
    assert (data.num_classes, data.synthetic) == (1000, None)
    assert ts.build_module(cfg).model.fc8.out_features == 1000


def test_ours_and_hand_take_the_same_steps(tmp_path: Path) -> None:
    """Same model, optimizer, loss and batches: Lightning's steps and the hand loop's end at the same weights,
    so the benchmark compares the cost of the same work."""
    case = ts.Case("zf5_spp", (64,))
    cfg = ts.compose_config(case, TINY, ["model.dropout=0"], str(tmp_path))
    switches = ts.switches_from_config(cfg, torch.device("cpu"))
    batches = ts.make_batches(case, 2, 3, 5, torch.device("cpu"))
    weights = {}
    for loop in ("ours", "hand"):
        torch.manual_seed(0)
        _, model = ts.RUNNERS[loop](cfg, switches, batches, 1, True)
        weights[loop] = model.state_dict()
    torch.manual_seed(0)
    initial = ts.build_module(cfg).model.state_dict()
    assert not torch.equal(weights["hand"]["fc8.weight"], initial["fc8.weight"])
    for name, value in weights["hand"].items():
        torch.testing.assert_close(weights["ours"][name], value, rtol=1e-5, atol=1e-6)


def test_main_writes_a_table_and_raw_numbers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "raw.json"
    code = ts.main(
        [
            "--models",
            "zf5",
            "--sizes",
            "64",
            "--width",
            "0.125",
            "--fc-dim",
            "16",
            "--num-classes",
            "5",
            "--batch",
            "2",
            "--steps",
            "2",
            "--warmup",
            "1",
            "--repeats",
            "1",
            "--device",
            "cpu",
            "--no-eval",
            "--json",
            str(out),
            "model.dropout=0",
            "model.baseline_pool=paper_window",
        ]
    )  # no SPP at 64 px: too small a map for 6x6 bins
    assert code == 0
    printed = capsys.readouterr().out
    assert "| `zf5` | 64 |" in printed and "Device: CPU" in printed
    raw = json.loads(out.read_text())
    assert len(raw["measurements"]) == 3
    assert all(m["images_per_s"] > 0 for m in raw["measurements"])
    assert set(raw["summary"]["zf5@64 train"]["ratios"]) == {"hand", "timm"}
    assert raw["flops_per_image"]["zf5@64"][1] > raw["flops_per_image"]["zf5@64"][0] > 0


def test_alternate_needs_spp_models_and_enough_warmup() -> None:
    with pytest.raises(SystemExit):
        ts.main(["--models", "zf5", "--alternate", "--sizes", "64", "48", "--device", "cpu"])
    with pytest.raises(SystemExit):
        ts.main(["--models", "zf5_spp", "--alternate", "--sizes", "64", "48", "--warmup", "1", "--device", "cpu"])


def test_main_alternating_compiled_with_evaluation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The rest of main's paths: --alternate, evaluation rows, the compiled-graphs column (dynamo's cheap eager
    backend), --threads, --loops (one: the loops themselves are tested above)."""
    out = tmp_path / "raw.json"
    tiny = ["--width", "0.125", "--fc-dim", "16", "--num-classes", "5", "--batch", "2", "--threads", "1"]
    code = ts.main(
        ["model.compile=true", "model.compile_backend=eager", "model.dropout=0", "--models", "zf5_spp"]
        + ["--alternate", "--sizes", "112", "96", "--steps", "2", "--warmup", "2", "--repeats", "1"]
        + [*tiny, "--loops", "hand", "--device", "cpu", "--json", str(out)]
    )
    assert code == 0 and torch.get_num_threads() == 1
    printed = capsys.readouterr().out
    assert "compile True" in printed and "| `zf5_spp` | 112/96 |" in printed
    raw = json.loads(out.read_text())
    assert [(m["loop"], m["train"]) for m in raw["measurements"]] == [("hand", True), ("hand", False)]
    assert all(m["images_per_s"] > 0 for m in raw["measurements"])
    assert all(m["graphs_after_warmup"] == 0 for m in raw["measurements"])  # one dynamic graph for both sizes
    assert set(raw["summary"]) == {"zf5_spp@112/96 train", "zf5_spp@112/96 eval"}
