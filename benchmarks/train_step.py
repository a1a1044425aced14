"""Training and evaluation images/s of the SPP-net models through spp-cls's Lightning step, a minimal hand-written
PyTorch loop and timm's training step: the same model, the same synthetic on-device batches, side by side in one
run. What the framework costs on top of the arithmetic, and how it compares with timm's ``train.py``.

Run from the repository root::

    python benchmarks/train_step.py [OVERRIDE ...] [--models zf5_spp zf5 ...] [--sizes 224 180] [--batch 64]
        [--steps 20] [--warmup 5] [--repeats 3] [--width 1.0] [--fc-dim 4096] [--num-classes 1000]
        [--device cuda|cpu] [--alternate] [--no-eval] [--loops ours hand timm] [--threads N] [--peak-tflops T]
        [--json PATH]

``OVERRIDE``: train.py overrides of the run config, e.g. ``trainer.precision=bf16-mixed``, before the options
(after a list option such as ``--sizes`` they would be read as its values). The benchmark
composes ``conf/train.yaml`` with them and with its own (model, batch, sizes, one epoch, no progress bar, a
temporary run directory). Every switch of that config that the loops share (precision, channels-last,
compilation, cudnn autotuning, the optimizer) is read from it and applied to all three loops alike.

Loops (``--loops``, each on a fresh model seeded alike, in train mode; for evaluation in eval mode):

ours   ``build_module(cfg)`` and ``build_trainer(cfg)`` of train.py: our ``SppClassifier`` in a ``pl.Trainer``
       with train.py's callbacks (checkpoints, learning-rate monitor, epoch summary) and TensorBoard logger, and
       our data module's device-side hooks (normalisation, skipped-image books) with the batches as its loader;
       ``trainer.fit`` for one epoch (no validation); evaluation is ``trainer.validate`` (the validation step:
       loss, top-1/top-5 error metrics, logging).
hand   the module's own model and optimizer (``configure_optimizers``), then per step: our normaliser,
       autocast forward, ``F.cross_entropy``, ``zero_grad(set_to_none=True)``, backward
       (``torch.amp.GradScaler`` for fp16), ``optimizer.step()``; nothing else. Evaluation:
       ``torch.inference_mode()``, forward, loss, top-1/top-5 hits summed on the device.
timm   timm's training step as its ``train.py`` composes it: ``timm.create_model(name, ...)``,
       ``create_optimizer_v2(model, "momentum", lr, weight_decay, momentum)`` (SGD, no weight decay on biases),
       ``nn.CrossEntropyLoss`` (``--smoothing 0``), ``NativeScaler`` for fp16, ``loss.item()`` every step (its
       non-distributed loss meter), ``optimizer.zero_grad()`` after the step; ``torch.compile`` of the model and
       channels-last as its ``--torchcompile`` / ``--channels-last`` do (with our dynamic setting); the inputs
       normalised on the device, as its prefetcher does (here by our normaliser). Evaluation as its
       ``validate``: ``torch.no_grad()``, forward, loss, ``timm.utils.accuracy(topk=(1, 5))``, ``.item()`` of
       each, a device synchronisation every step.

Batches: ``--steps`` + ``--warmup`` batches of ``--batch`` random uint8 images and targets, made on the device
before timing, as our loaders deliver them (channels-last uint8; the skipped-image count on the host); a step
cycles through two distinct batches. ``--alternate``: one row per SPP model with the ``--sizes`` alternating
step by step (the worst case of multi-size training, which switches once an epoch), for counting compilations
after warm-up.

Timing: from the end of warm-up step ``--warmup`` to the end of the last step, with a device synchronisation at
both ends only (none in between: the host may run ahead, as in training). Repeats are interleaved (repeat >
model/size > loop, loop order rotated each repeat) so that noise on a shared machine spreads over all loops;
tables quote medians over ``--repeats``; ratios are medians of the ratios within a repeat (adjacent in time).
The process's CPU time over the same window (on a CPU: a second set of ratios, steadier than wall time when
other processes share the cores) and the machine's 1-minute load average are recorded as well. On a shared
CPU use ``--threads 1``: two OpenMP threads on two busy cores wait for each other at every barrier and make
wall times swing several-fold.

Compilation (a config switch, see docs/speed.md) happens in the warm-up steps; the table then gives the graphs
compiled after warm-up (``torch._dynamo``'s ``unique_graphs`` counter), which must be 0. Dynamo's caches are
reset before each model/size, so every loop of it runs the same compiled code.

FLOPs: ``measure_flops`` (torch's FLOP counter) of one image's forward (evaluation) and forward + backward
(training) on the meta device; "% peak" = FLOPs x images/s / the device's dense peak for the run's precision
(``PEAK_TFLOPS``, or ``--peak-tflops``): shown on a GPU whose peak is known.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
import warnings
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import pytorch_lightning as pl
import timm
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from lightning_fabric.utilities.throughput import measure_flops
from omegaconf import DictConfig
from timm.optim import create_optimizer_v2
from timm.utils import NativeScaler, accuracy
from torch import nn
from torch.utils.data import DataLoader

from spp_cls.cli.builders import as_config, build_trainer
from spp_cls.cli.train import build_module
from spp_cls.config import register_configs
from spp_cls.data.config import DataConfig
from spp_cls.data.normalize import BatchNormalizer
from spp_cls.data.skips import SkipTracker
from spp_cls.lightning import ClassificationDataModule
from spp_cls.lightning.optim import effective_lr
from spp_cls.models import MODEL_NAMES

CONF = Path(__file__).resolve().parents[1] / "conf"
LOOPS = ("ours", "hand", "timm")
PRECISIONS = {"32-true": None, "32": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}

# Dense (no sparsity) tensor-core peaks in TFLOP/s from NVIDIA's data sheets (H100: SXM5 and PCIe; H200: SXM;
# A100: SXM4/PCIe), matched against torch.cuda.get_device_name in this order. fp32 runs are rated at TF32 when
# cuDNN may use it for convolutions (torch's default), the bulk of these networks' arithmetic.
PEAK_TFLOPS: tuple[tuple[str, dict[str, float]], ...] = (
    ("h100 pcie", {"bf16": 756.0, "fp16": 756.0, "tf32": 378.0, "fp32": 51.2}),
    ("h100", {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9}),
    ("h200 nvl", {"bf16": 835.5, "fp16": 835.5, "tf32": 417.5, "fp32": 60.0}),
    ("h200", {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9}),
    ("a100", {"bf16": 312.0, "fp16": 312.0, "tf32": 156.0, "fp32": 19.5}),
)


def peak_flops(device_name: str, precision: str) -> Optional[float]:
    """The dense peak FLOP/s of a GPU for a Lightning precision (None when the GPU is not in the table)."""
    name = device_name.lower()
    for key, peaks in PEAK_TFLOPS:
        if key in name:
            dtype = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(PRECISIONS[precision])
            if dtype is None:
                dtype = "tf32" if torch.backends.cudnn.allow_tf32 else "fp32"
            return peaks[dtype] * 1e12
    return None


# ------------------------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class Case:
    """One table row: a registered model and its input sizes (one, or several alternating step by step)."""

    name: str
    sizes: tuple[int, ...]

    @property
    def spp(self) -> bool:
        return self.name.endswith("_spp")

    @property
    def arch(self) -> str:
        return self.name.removesuffix("_spp")

    @property
    def label(self) -> str:
        return "/".join(str(s) for s in self.sizes)


@dataclass(frozen=True)
class Switches:
    """The run config's settings that every loop applies alike."""

    device: torch.device
    precision: str
    channels_last: bool
    compile: bool
    compile_dynamic: Optional[bool]
    compile_mode: Optional[str]
    compile_backend: str
    cudnn_benchmark: bool

    @property
    def autocast_dtype(self) -> Optional[torch.dtype]:
        return PRECISIONS[self.precision]

    def autocast(self) -> AbstractContextManager:
        dtype = self.autocast_dtype
        return torch.autocast(self.device.type, dtype=dtype) if dtype is not None else nullcontext()

    def prepare(self, model: nn.Module) -> nn.Module:
        """Move a model to the device (channels-last when set) and compile it in place when set, as
        ``SppClassifier.configure_model`` does."""
        model.to(self.device, memory_format=torch.channels_last if self.channels_last else torch.preserve_format)
        if self.compile:
            model.compile(dynamic=self.compile_dynamic, mode=self.compile_mode, backend=self.compile_backend)
        return model


def compose_config(case: Case, args: argparse.Namespace, overrides: Sequence[str], output_dir: str) -> DictConfig:
    """train.py's config for one case: the user's overrides, then the benchmark's own (training runs one epoch
    over the batches and no validation; the step schedule keeps the plateau schedule's epoch-end check out)."""
    register_configs()
    ours = [
        f"model.arch={case.arch}",
        f"model.spp={str(case.spp).lower()}",
        f"model.width={args.width}",
        f"model.fc_dim={args.fc_dim}",
        f"data.num_classes={args.num_classes}",
        "data.synthetic=null",  # batches come from memory: no generated data set, whose 12 classes would cap this
        f"data.batch_size={args.batch}",
        f"data.crop_size={case.sizes[0]}",
        f"data.resize_size={max(case.sizes)}",
        f"trainer.accelerator={'gpu' if args.device == 'cuda' else 'cpu'}",
        "trainer.devices=1",
        "trainer.num_nodes=1",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "trainer.num_sanity_val_steps=0",
        "trainer.check_val_every_n_epoch=2",
        "optim.scheduler=step",
        "ckpt_path=null",
        f"paths.root_dir={CONF.parent}",
        f"paths.output_dir={output_dir}",
    ]
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", overrides=[*overrides, *ours])


def switches_from_config(cfg: DictConfig, device: torch.device) -> Switches:
    precision = str(cfg.trainer.precision)
    if precision not in PRECISIONS:
        raise ValueError(f"trainer.precision={precision}: the benchmark knows {sorted(PRECISIONS)}")
    if precision == "16-mixed" and device.type != "cuda":
        raise ValueError("trainer.precision=16-mixed needs a GPU (use bf16-mixed on a CPU)")
    m = cfg.model
    return Switches(
        device=device,
        precision=precision,
        channels_last=m.channels_last,
        compile=m.compile,
        compile_dynamic=m.compile_dynamic,
        compile_mode=m.compile_mode,
        compile_backend=m.compile_backend,
        cudnn_benchmark=bool(cfg.trainer.benchmark),
    )


# ----------------------------------------------------------------------------------------------- batches
def make_batches(
    case: Case, batch: int, count: int, num_classes: int, device: torch.device, seed: int = 0
) -> list[dict[str, Any]]:
    """``count`` batches as our loaders deliver them, already on the device: random uint8 images, channels-last
    (as ``collate_images`` stacks them), targets, and the host-side count of skipped images; two distinct
    batches per size, sizes alternating step by step."""
    generator = torch.Generator().manual_seed(seed)
    distinct = {}
    for size in case.sizes:
        for k in range(2):
            image = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=generator)
            target = torch.randint(0, num_classes, (batch,), generator=generator)
            distinct[size, k] = {
                "image": image.to(device).contiguous(memory_format=torch.channels_last),
                "target": target.to(device),
                "skipped": torch.tensor(0),
                "skipped_paths": [],
            }
    sizes = case.sizes
    return [distinct[sizes[i % len(sizes)], (i // len(sizes)) % 2] for i in range(count)]


def device_inputs(cfg: DictConfig, switches: Switches) -> Callable[[dict[str, Any]], torch.Tensor]:
    """What training does to a batch's images on the device: our normaliser (uint8 to normalised float), then
    channels-last when the config asks for it (as timm's ``--channels-last`` does to its inputs)."""
    normalizer = BatchNormalizer(as_config(cfg.data, DataConfig))
    memory_format = torch.channels_last if switches.channels_last else torch.contiguous_format
    return lambda batch: normalizer(batch["image"]).contiguous(memory_format=memory_format)


class OnDeviceBatches(ClassificationDataModule):
    """The data module of a run with the benchmark's batches as its loaders: what it does to a batch on the
    device (normalisation, the books of skipped images) runs as in training; reading files does not."""

    def __init__(self, cfg: DictConfig, batches: list[dict[str, Any]]) -> None:
        super().__init__(
            replace(as_config(cfg.data, DataConfig), root=tempfile.gettempdir(), synthetic=None), num_workers=0
        )
        self.batches = batches

    def prepare_data(self) -> None:
        pass

    def setup(self, stage: Optional[str] = None) -> None:
        pass

    def _batches(self, split: str) -> DataLoader:
        self.skips[split] = SkipTracker(split, len(self.batches) * self.batch_size, self.config.max_skip_fraction)
        return DataLoader(self.batches, batch_size=None)  # hands the batches over as they are

    def train_dataloader(self) -> DataLoader:
        return self._batches("train")

    def val_dataloader(self) -> DataLoader:
        return self._batches("val")


# ------------------------------------------------------------------------------------------------ timing
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def compiled_graphs() -> int:
    """Graphs torch._dynamo has compiled in this process so far."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


@dataclass
class Window:
    """The timed window of a loop: from the end of the last warm-up step to the end of the last step."""

    device: torch.device
    warmup: int
    last: int
    start: float = 0.0
    cpu_start: float = 0.0
    graphs_start: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    graphs: int = 0

    def step_done(self, index: int) -> None:
        """Call after step ``index`` (0-based) was issued."""
        if index == self.warmup - 1:
            synchronize(self.device)
            self.start, self.cpu_start, self.graphs_start = time.perf_counter(), time.process_time(), compiled_graphs()
        elif index == self.last:
            synchronize(self.device)
            self.seconds = time.perf_counter() - self.start
            self.cpu_seconds = time.process_time() - self.cpu_start
            self.graphs = compiled_graphs() - self.graphs_start


class WindowCallback(pl.Callback):
    """Marks the timed window from Lightning's batch-end hooks (the same points as the plain loops)."""

    def __init__(self, window: Window) -> None:
        self.window = window

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.window.step_done(batch_idx)

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self.window.step_done(batch_idx)


# ------------------------------------------------------------------------------------------------- loops
@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Lightning's and our own start-up lines, and its warnings about this setup (no validation data, no
    loader workers: batches are already on the device), would drown the benchmark's output."""
    loggers = [logging.getLogger(name) for name in ("pytorch_lightning", "lightning_fabric", "spp_cls")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"(pytorch_lightning|lightning_fabric)\..*")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


def run_ours(cfg: DictConfig, switches: Switches, batches: list, warmup: int, train: bool) -> tuple[Window, nn.Module]:
    module = build_module(cfg)  # the module applies the config's switches itself; Lightning moves it
    trainer = build_trainer(cfg)
    window = Window(switches.device, warmup, len(batches) - 1)
    trainer.callbacks.append(WindowCallback(window))
    data = OnDeviceBatches(cfg, batches)
    if train:
        trainer.fit(module, datamodule=data)
    else:
        trainer.validate(module, datamodule=data, verbose=False)
    return window, module.model


def run_hand(cfg: DictConfig, switches: Switches, batches: list, warmup: int, train: bool) -> tuple[Window, nn.Module]:
    module = build_module(cfg)
    model = switches.prepare(module.model)
    inputs = device_inputs(cfg, switches)
    window = Window(switches.device, warmup, len(batches) - 1)
    if not train:
        model.eval()
        hits = torch.zeros(2, dtype=torch.long, device=switches.device)
        with torch.inference_mode():
            for i, batch in enumerate(batches):
                with switches.autocast():
                    logits = model(inputs(batch))
                    F.cross_entropy(logits, batch["target"])
                top5 = logits.topk(5, dim=1).indices
                hits += torch.stack(
                    [(top5[:, 0] == batch["target"]).sum(), (top5 == batch["target"][:, None]).any(1).sum()]
                )
                window.step_done(i)
        return window, model
    optimizer = module.configure_optimizers()["optimizer"]
    scaler = torch.amp.GradScaler(switches.device.type) if switches.autocast_dtype == torch.float16 else None
    model.train()
    for i, batch in enumerate(batches):
        with switches.autocast():
            loss = F.cross_entropy(model(inputs(batch)), batch["target"])
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        window.step_done(i)
    return window, model


def timm_kwargs(cfg: DictConfig) -> dict[str, Any]:
    """``timm.create_model`` arguments of the run's model (what ``create_classifier`` passes)."""
    m = cfg.model
    kwargs = dict(
        num_classes=cfg.data.num_classes,
        width=m.width,
        fc_dim=m.fc_dim,
        dropout=m.dropout,
        lrn=m.lrn,
        lrn_input_scale=m.lrn_input_scale,
        init=m.init,
    )
    if m.spp:
        kwargs.update(pyramid=list(m.pyramid))
    else:
        kwargs.update(img_size=cfg.data.crop_size, baseline_pool=m.baseline_pool)
    return kwargs


def run_timm(cfg: DictConfig, switches: Switches, batches: list, warmup: int, train: bool) -> tuple[Window, nn.Module]:
    name = f"{cfg.model.arch}_spp" if cfg.model.spp else str(cfg.model.arch)
    model = switches.prepare(timm.create_model(name, **timm_kwargs(cfg)))
    loss_fn = nn.CrossEntropyLoss().to(switches.device)
    inputs = device_inputs(cfg, switches)  # timm's prefetcher also normalises on the device
    window = Window(switches.device, warmup, len(batches) - 1)
    if not train:
        model.eval()
        with torch.no_grad():
            for i, batch in enumerate(batches):
                with switches.autocast():
                    output = model(inputs(batch))
                loss = loss_fn(output, batch["target"])
                acc1, acc5 = accuracy(output, batch["target"], topk=(1, 5))
                synchronize(switches.device)
                loss.item(), acc1.item(), acc5.item()
                window.step_done(i)
        return window, model
    lr = effective_lr(
        cfg.optim.lr,
        cfg.data.batch_size * cfg.trainer.accumulate_grad_batches,
        cfg.optim.base_batch_size,
        cfg.optim.lr_scaling,
    )  # the rate build_module gives ours
    optimizer = create_optimizer_v2(
        model, "momentum", lr=lr, weight_decay=cfg.optim.weight_decay, momentum=cfg.optim.momentum
    )
    loss_scaler = NativeScaler(device=switches.device.type) if switches.autocast_dtype == torch.float16 else None
    model.train()
    for i, batch in enumerate(batches):
        with switches.autocast():
            loss = loss_fn(model(inputs(batch)), batch["target"])
        if loss_scaler is None:
            loss.backward()
            optimizer.step()
        else:
            loss_scaler(loss, optimizer)
        loss.item()
        optimizer.zero_grad()
        window.step_done(i)
    return window, model


# each returns the timed window and the model it ran (trained in place)
RUNNERS: dict[str, Callable[..., tuple[Window, nn.Module]]] = {"ours": run_ours, "hand": run_hand, "timm": run_timm}


# ------------------------------------------------------------------------------------------------- FLOPs
def image_flops(cfg: DictConfig, size: int) -> tuple[float, float]:
    """(evaluation, training) FLOPs of one image: forward, and forward + backward, counted on the meta device."""
    name = f"{cfg.model.arch}_spp" if cfg.model.spp else str(cfg.model.arch)
    kwargs = timm_kwargs(cfg)
    if not cfg.model.spp:
        kwargs["img_size"] = size
    with torch.device("meta"):
        model = timm.create_model(name, **kwargs)
        x = torch.empty(1, 3, size, size)
    forward = measure_flops(model.eval(), lambda: model(x))
    training = measure_flops(model.train(), lambda: model(x), lambda y: y.sum())
    return float(forward), float(training)


# ----------------------------------------------------------------------------------------------- running
@dataclass
class Measurement:
    case: str
    loop: str
    train: bool
    repeat: int
    images_per_s: float
    cpu_seconds_per_image: float
    graphs_after_warmup: int
    load: float


@dataclass
class BenchmarkConfig:
    """What the run measures (from the command line)."""

    cases: list[Case]
    loops: tuple[str, ...]
    modes: tuple[bool, ...]  # True: training, False: evaluation
    batch: int
    steps: int
    warmup: int
    repeats: int
    num_classes: int
    seed: int
    overrides: list[str] = field(default_factory=list)


def measure(
    case: Case, loop: str, train: bool, args: argparse.Namespace, settings: BenchmarkConfig, device: torch.device
) -> tuple[Window, Switches]:
    """One timed run of a loop on a fresh model; the config and its run directory are made for it."""
    with tempfile.TemporaryDirectory(prefix="train_step_") as output_dir:
        cfg = compose_config(case, args, settings.overrides, output_dir)
        switches = switches_from_config(cfg, device)
        torch.backends.cudnn.benchmark = switches.cudnn_benchmark
        batches = make_batches(
            case, settings.batch, settings.warmup + settings.steps, settings.num_classes, device, settings.seed
        )
        torch.manual_seed(settings.seed)
        window, _ = RUNNERS[loop](cfg, switches, batches, settings.warmup, train)
    return window, switches


def run(
    settings: BenchmarkConfig, args: argparse.Namespace, device: torch.device
) -> tuple[list[Measurement], Switches]:
    results: list[Measurement] = []
    switches: Optional[Switches] = None
    for repeat in range(settings.repeats):
        for case in settings.cases:
            if switches is not None and switches.compile:
                torch.compiler.reset()  # one case's graphs at a time (dynamo's cache per function is small)
            for train in settings.modes:
                shift = repeat % len(settings.loops)
                for loop in settings.loops[shift:] + settings.loops[:shift]:
                    load = os.getloadavg()[0]
                    window, switches = measure(case, loop, train, args, settings, device)
                    images = settings.steps * settings.batch
                    m = Measurement(
                        case.name + "@" + case.label,
                        loop,
                        train,
                        repeat,
                        images / window.seconds,
                        window.cpu_seconds / images,
                        window.graphs,
                        load,
                    )
                    results.append(m)
                    print(
                        f"  repeat {repeat + 1}/{settings.repeats} {m.case} {'train' if train else 'eval'} "
                        f"{loop}: {m.images_per_s:.1f} images/s (load {load:.1f}"
                        f"{f', {m.graphs_after_warmup} graphs after warm-up' if switches.compile else ''})",
                        flush=True,
                    )
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
    assert switches is not None
    return results, switches


# ----------------------------------------------------------------------------------------------- report
def summarize(results: list[Measurement], case: str, train: bool, loops: Sequence[str]) -> dict[str, Any]:
    """Medians over repeats per loop, and medians of ours/other within each repeat: of images/s (wall clock),
    and of CPU seconds per image (other/ours, so > 1 is ours faster here too)."""
    rows = [m for m in results if m.case == case and m.train == train]
    speed = {loop: statistics.median(m.images_per_s for m in rows if m.loop == loop) for loop in loops}
    graphs = max((m.graphs_after_warmup for m in rows), default=0)
    ratios: dict[str, float] = {}
    cpu_ratios: dict[str, float] = {}
    if "ours" in loops:
        for other in (loop for loop in loops if loop != "ours"):
            pairs = [(a, b) for a in rows if a.loop == "ours" for b in rows if b.loop == other and b.repeat == a.repeat]
            ratios[other] = statistics.median(a.images_per_s / b.images_per_s for a, b in pairs)
            cpu_ratios[other] = statistics.median(b.cpu_seconds_per_image / a.cpu_seconds_per_image for a, b in pairs)
    return dict(speed=speed, ratios=ratios, cpu_ratios=cpu_ratios, graphs=graphs)


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{props.name} ({props.total_memory / 2**30:.0f} GiB), CUDA {torch.version.cuda}"
    return f"CPU: {platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def print_table(
    results: list[Measurement],
    settings: BenchmarkConfig,
    switches: Switches,
    flops: dict[str, tuple[float, float]],
    peak: Optional[float],
) -> dict[str, Any]:
    """The Markdown table; on a CPU also the ratios of CPU time, steadier than wall time on a shared machine."""
    on_cpu = switches.device.type == "cpu"
    loops = settings.loops
    others = [loop for loop in loops if loop != "ours"] if "ours" in loops else []
    summary: dict[str, Any] = {}
    header = ["model", "size"]
    for mode in settings.modes:
        kind = "train" if mode else "eval"
        header += [f"{kind} images/s {' / '.join(loops)}"] + [f"{kind} ours÷{o}" for o in others]
        if on_cpu:
            header += [f"{kind} ours÷{o} CPU time" for o in others]
        if peak is not None and "ours" in loops:
            header.append(f"{kind} % peak (ours)")
    if switches.compile:
        header.append("graphs after warm-up")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * 2 + "---:|" * (len(header) - 2))
    for case in settings.cases:
        key = case.name + "@" + case.label
        cells = [f"`{case.name}`", case.label]
        graphs = 0
        for mode in settings.modes:
            s = summarize(results, key, mode, loops)
            summary[f"{key} {'train' if mode else 'eval'}"] = s
            graphs = max(graphs, s["graphs"])
            cells.append(" / ".join(f"{s['speed'][loop]:.1f}" for loop in loops))
            cells += [f"{s['ratios'][o]:.3f}" for o in others]
            if on_cpu:
                cells += [f"{s['cpu_ratios'][o]:.3f}" for o in others]
            if peak is not None and "ours" in loops:
                per_image = flops[key][1 if mode else 0]
                cells.append(f"{per_image * s['speed']['ours'] / peak:.1%}")
        if switches.compile:
            cells.append(str(graphs))
        print("| " + " | ".join(cells) + " |")
    return summary


def build_cases(args: argparse.Namespace) -> list[Case]:
    if args.alternate:
        return [Case(name, tuple(args.sizes)) for name in args.models if name.endswith("_spp")]
    return [Case(name, (size,)) for name in args.models for size in args.sizes]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("overrides", nargs="*", help="train.py config overrides, e.g. trainer.precision=bf16-mixed")
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES)
    parser.add_argument("--sizes", nargs="+", type=int, default=[224, 180])
    parser.add_argument("--batch", type=int, default=64, help="images a step")
    parser.add_argument("--steps", type=int, default=20, help="timed steps a run")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before them (compilation, autotuning)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--width", type=float, default=1.0, help="conv channel multiplier (1.0: the paper's nets)")
    parser.add_argument("--fc-dim", type=int, default=4096)
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--loops", nargs="+", default=list(LOOPS), choices=LOOPS)
    parser.add_argument("--no-eval", action="store_true", help="training only")
    parser.add_argument(
        "--alternate",
        action="store_true",
        help="SPP models only, sizes alternating step by step (counts recompilations)",
    )
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's peak, if not in the table")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's); 1 keeps a shared CPU's timings steady",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="save every raw number here")
    args = parser.parse_args(argv)
    if min(args.batch, args.steps, args.warmup, args.repeats) < 1:
        parser.error("--batch, --steps, --warmup and --repeats must be >= 1")
    if args.alternate and (len(args.sizes) < 2 or args.warmup < len(args.sizes)):
        parser.error("--alternate needs two or more --sizes and --warmup >= the number of sizes")
    cases = build_cases(args)
    if not cases:
        parser.error("--alternate needs SPP models (no-SPP models take one size)")
    device = torch.device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    settings = BenchmarkConfig(
        cases=cases,
        loops=tuple(args.loops),
        modes=(True,) if args.no_eval else (True, False),
        batch=args.batch,
        steps=args.steps,
        warmup=args.warmup,
        repeats=args.repeats,
        num_classes=args.num_classes,
        seed=args.seed,
        overrides=list(args.overrides),
    )
    wall_start = time.perf_counter()
    command = "python benchmarks/train_step.py" + ("" if not sys.argv[1:] else " " + shlex.join(sys.argv[1:]))
    print(
        f"# {len(cases)} cases x {len(settings.loops)} loops x {len(settings.modes)} modes x {args.repeats} "
        f"repeats, batch {args.batch}, {args.warmup} + {args.steps} steps",
        flush=True,
    )

    with quiet_lightning():
        results, switches = run(settings, args, device)

    flops: dict[str, tuple[float, float]] = {}
    for case in cases:
        with tempfile.TemporaryDirectory() as out:
            cfg = compose_config(case, args, settings.overrides, out)
        per_size = [image_flops(cfg, size) for size in case.sizes]
        flops[case.name + "@" + case.label] = (
            statistics.mean(f[0] for f in per_size),
            statistics.mean(f[1] for f in per_size),
        )
    peak = None
    if device.type == "cuda":
        peak = (
            args.peak_tflops * 1e12
            if args.peak_tflops
            else peak_flops(torch.cuda.get_device_name(device), switches.precision)
        )
    loads = [m.load for m in results]
    print()
    print(f"Device: {device_description(device)}")
    print(
        f"Versions: torch {torch.__version__}, pytorch-lightning {pl.__version__}, timm {timm.__version__}, "
        f"Python {platform.python_version()}"
    )
    print(f"Command: `{command}`")
    print(
        f"Switches: precision {switches.precision}, channels-last {switches.channels_last}, compile "
        f"{switches.compile} (dynamic={switches.compile_dynamic}, mode={switches.compile_mode}, "
        f"backend={switches.compile_backend}), cudnn.benchmark {switches.cudnn_benchmark}; "
        f"width {args.width}, fc {args.fc_dim}, {args.num_classes} classes, batch {args.batch}"
    )
    print(
        f"1-minute load average during the runs: median {statistics.median(loads):.1f} "
        f"(min {min(loads):.1f}, max {max(loads):.1f}) on {os.cpu_count()} cores"
    )
    if peak is not None:
        print(
            f"Peak: {peak / 1e12:.1f} TFLOP/s dense; FLOPs per image (train / eval): "
            + ", ".join(f"{k} {v[1] / 1e9:.2f} / {v[0] / 1e9:.2f} G" for k, v in flops.items())
        )
    print()
    print(
        f"images/s, median of {args.repeats} interleaved repeats; ours÷X: median of the per-repeat ratios "
        f"(> 1: ours faster)"
    )
    print()
    summary = print_table(results, settings, switches, flops, peak)
    wall = time.perf_counter() - wall_start
    print()
    print(f"Wall time: {wall:.0f} s")
    if args.json:
        raw = dict(
            command=command,
            device=device_description(device),
            args=vars(args),
            switches={k: str(v) for k, v in asdict(switches).items()},
            flops_per_image=flops,
            peak_flops=peak,
            measurements=[asdict(m) for m in results],
            summary=summary,
            wall_seconds=wall,
        )
        with open(args.json, "w") as f:
            json.dump(raw, f, indent=2)
        print(f"Raw numbers: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
