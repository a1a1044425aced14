"""The GPU path's switches, checked on a CPU: channels-last, torch.compile with dynamic sizes, the SGD
implementations, and the module's once-an-epoch metric logging (same numbers, fewer calls)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Sequence

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from spp_cls.lightning import SppClassifier
from spp_cls.lightning.optim import build_optimization
from tests.helpers import STEP_OPTIM as OPTIM
from tests.helpers import quiet_trainer

MODEL = dict(arch="zf5", spp=True, width=0.125, fc_dim=16, dropout=0.0)
CLASSES = 5


def batches(sizes: Sequence[int], count: int, batch: int = 2) -> list[dict[str, Any]]:
    """Normalised float batches (what the data module hands over), the sizes taking turns."""
    generator = torch.Generator().manual_seed(0)
    return [
        {
            "image": torch.randn(batch, 3, sizes[i % len(sizes)], sizes[i % len(sizes)], generator=generator),
            "target": torch.randint(0, CLASSES, (batch,), generator=generator),
            "skipped": torch.tensor(0),
        }
        for i in range(count)
    ]


def module(**runtime: Any) -> SppClassifier:
    torch.manual_seed(0)
    return SppClassifier(model={**MODEL, **runtime}, optim=OPTIM, num_classes=CLASSES, input_size=64, lr=0.05)


def trainer(tmp_path: Path, steps: int, **kwargs: Any) -> pl.Trainer:
    return quiet_trainer(tmp_path, max_steps=steps, **kwargs)


def loader(data: list[dict[str, Any]]) -> DataLoader:
    return DataLoader(data, batch_size=None)


def test_channels_last_trains_like_the_default_layout(tmp_path: Path) -> None:
    data = batches([64], 3)
    weights = {}
    for layout in (False, True):
        m = module(channels_last=layout)
        trainer(tmp_path, 3).fit(m, loader(data))
        weights[layout] = m.model.state_dict()
        conv = m.model.features[0].conv.weight
        assert conv.is_contiguous(memory_format=torch.channels_last) == layout
    for name, value in weights[False].items():
        torch.testing.assert_close(weights[True][name], value, rtol=1e-4, atol=1e-5)


def graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


@pytest.mark.slow  # dynamo + AOT autograd tracing of the training and evaluation graphs: about 30 s on 2 cores
def test_compile_with_dynamic_sizes_compiles_once_and_trains_as_eager(tmp_path: Path) -> None:
    """Sizes switching every step (multi-size training switches every epoch): after the first step of training
    and the first of validation, nothing more is compiled, and the weights are eager's."""
    torch.compiler.reset()
    data = batches([64, 48, 56], 6)
    compiled = module(compile=True, compile_backend="aot_eager")
    fit = trainer(tmp_path, 1)
    fit.fit(compiled, loader(data[:1]))
    fit.validate(compiled, loader(data[:1]), verbose=False)
    warm = graphs()
    assert warm > 0
    fit = trainer(tmp_path, len(data))
    fit.fit(compiled, loader(data))
    fit.validate(compiled, loader(data), verbose=False)
    assert graphs() == warm
    eager = module()
    trainer(tmp_path, 1).fit(eager, loader(data[:1]))
    trainer(tmp_path, len(data)).fit(eager, loader(data))
    for name, value in eager.model.state_dict().items():
        torch.testing.assert_close(compiled.model.state_dict()[name], value, rtol=1e-4, atol=1e-5)
    assert set(compiled.state_dict()) == set(eager.state_dict())  # compiled in place: checkpoints keep their keys


@pytest.mark.parametrize(
    "implementation, flags",
    [("fused", {"fused": True}), ("foreach", {"foreach": True}), ("for_loop", {"foreach": False}), ("auto", {})],
)
def test_sgd_implementations_take_the_same_steps(implementation: str, flags: dict[str, bool]) -> None:
    torch.manual_seed(0)
    reference = [torch.randn(4, 3, requires_grad=True), torch.randn(3, requires_grad=True)]
    params = [p.detach().clone().requires_grad_() for p in reference]
    expected = torch.optim.SGD(reference, lr=0.1, momentum=0.9, weight_decay=5e-4, foreach=False)
    optimizer = build_optimization(params, dict(OPTIM, implementation=implementation), 0.1, "x")["optimizer"]
    assert bool(optimizer.defaults["fused"]) == flags.get("fused", False)
    assert optimizer.defaults["foreach"] == flags.get("foreach")
    for _ in range(3):
        for group, opt in ((reference, expected), (params, optimizer)):
            opt.zero_grad()
            (group[0].sin().sum() + group[1].square().sum()).backward()
            opt.step()
    for a, b in zip(params, reference):
        torch.testing.assert_close(a, b)


def test_unknown_sgd_implementation_is_refused() -> None:
    with pytest.raises(ValueError, match="optim.implementation"):
        build_optimization([torch.zeros(1, requires_grad=True)], dict(OPTIM, implementation="apex"), 0.1, "x")


def csv_metrics(path: Path) -> list[dict[str, str]]:
    with (path / "metrics.csv").open(newline="") as f:
        return [{k: v for k, v in row.items() if v} for row in csv.DictReader(f)]


def test_epoch_metrics_logged_once_cover_every_step(tmp_path: Path) -> None:
    """Handed to Lightning once an epoch, the metrics still sum up all of its batches."""
    data = batches([64], 3, batch=4)
    m = module()
    validated = trainer(tmp_path, 1).validate(m, loader(data), verbose=False)[0]
    with torch.no_grad():
        logits = [m.model.eval()(b["image"]) for b in data]
    targets = [b["target"] for b in data]
    loss = torch.stack([F.cross_entropy(x, t) for x, t in zip(logits, targets)]).mean()
    top1 = torch.cat([x.argmax(1) != t for x, t in zip(logits, targets)]).float().mean()
    assert validated["val/images"] == 12 and validated["val/skipped"] == 0
    assert validated["val/loss"] == pytest.approx(float(loss), rel=1e-5)
    assert validated["val/top1_err"] == pytest.approx(float(top1))


def test_step_loss_is_logged_on_the_steps_lightning_writes(tmp_path: Path) -> None:
    from pytorch_lightning.loggers import CSVLogger

    fit = trainer(tmp_path, 7, logger=CSVLogger(tmp_path, name="", version=""), log_every_n_steps=3)
    fit.fit(module(), loader(batches([64], 7)))
    rows = csv_metrics(tmp_path)
    assert sorted(int(r["step"]) for r in rows if "train/loss_step" in r) == [2, 5]
    epoch = [r for r in rows if "train/images" in r]
    assert len(epoch) == 1 and float(epoch[0]["train/images"]) == 14 and float(epoch[0]["train/input_size"]) == 64
