"""The GPU checks of spp-cls in one run (``bash scripts/gpu_check.sh``): PASS/FAIL rows and the figures for the
docs/speed.md, as a Markdown table naming the device, printed and written to ``<out>/gpu_check.md``.

Checks, each in its own process with its own time limit (and all within ``--budget-s``, 600 s by default; a check
that no longer fits is a SKIP row), most important first:

step        a bf16 training step through our Lightning module with compile + channels-last + fused SGD against
            the eager one (no compile, contiguous, foreach SGD): same initial weights and batches, the weight
            update after a few steps must differ by at most ``UPDATE_TOLERANCE`` of its size (bf16 eager against
            fp32 eager is shown beside it, for scale).
graphs      graphs compiled after warm-up: training alternating 224/180 and full images of several sizes (square,
            landscape, portrait) in evaluation, after a warm-up of one of each kind; must be 0.
protocols   every test protocol (``spp_cls.evaluation.protocols.PROTOCOLS``) through evaluate.py under bf16, on a
            checkpoint trained here (the smoke experiment on the GPU), against the same run in fp32: softmax
            scores within ``SCORE_TOLERANCE``.
throughput  images/s of our step, the hand-written loop and timm's (benchmarks/train_step.py), training and
            evaluation, ZF-5-SPP at 224 on the fast path; ours must reach ``TIMM_RATIO`` of timm's.
loader      GPU JPEG decoding (``data.decode_device=cuda``): nvJPEG's training views against the CPU path's for
            the same plans (mean difference within ``DECODE_TOLERANCE``), and the loader's images/s of every
            pipeline of benchmarks/data_throughput.py with (e) GPU decoding (docs/speed.md, "Will my node be fed?").
ddp         (2+ GPUs) NCCL DDP throughput of our Lightning step on 2 GPUs against 1 (scaling >= ``DDP_SCALING``).
resume      (2+ GPUs) a 2-GPU DDP training killed mid-epoch (SIGKILL after step 6) and resumed ends with the
            weights of an uninterrupted one (max |difference| <= ``RESUME_TOLERANCE``; 0 when exact).

Without CUDA it prints one line and exits 0 having run nothing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
BENCHMARK = REPO / "benchmarks" / "train_step.py"
DATA_BENCHMARK = REPO / "benchmarks" / "data_throughput.py"

UPDATE_TOLERANCE = 0.10  # |update(fast) - update(eager)| / |update(eager)|, over all weights
SCORE_TOLERANCE = 0.02  # max |softmax score difference|, bf16 against fp32
DDP_SCALING = 0.85  # images/s on 2 GPUs / (2 x on 1 GPU)
RESUME_TOLERANCE = 1e-5  # max |weight difference| of the resumed run against the uninterrupted one
TIMM_RATIO = 0.95  # ours / timm images/s (5 %: the run-to-run noise of one repeat)
DECODE_TOLERANCE = 1.5  # mean |GPU view - CPU view| in uint8 levels: nvJPEG's IDCT and upsampling differ slightly

STEP_BATCH, STEP_STEPS = 32, 6
# SPP_GPU_CHECK_CPU=1: a rehearsal of the checks' code on this machine's CPU (a 1/8-width net, batch 4, compiled
# by aot_eager instead of inductor); its figures mean nothing, only that the checks run. Not for the docs.
REHEARSAL = os.environ.get("SPP_GPU_CHECK_CPU") == "1"
FULL_IMAGE_SIZES = ((256, 256), (256, 384), (384, 256), (256, 300), (341, 256), (256, 455), (288, 288), (224, 224))
FAST_PATH = ("trainer.precision=bf16-mixed", "model.channels_last=true", "model.compile=true")


@dataclass
class Row:
    check: str
    result: str  # PASS | FAIL | SKIP
    measured: str
    criterion: str


# ------------------------------------------------------------------------------------------ pure pieces
def within(value: float, limit: float) -> bool:
    """``value <= limit``, with NaN (a diverged or broken run) never within."""
    return not math.isnan(value) and value <= limit


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def update_difference(initial: Mapping[str, Any], ours: Mapping[str, Any], reference: Mapping[str, Any]) -> float:
    """|ours - reference| / |reference - initial| over every floating-point tensor (the relative difference of the
    weight updates; tensors may be torch tensors or NumPy arrays)."""
    diff = size = 0.0
    for name, ref in reference.items():
        if not hasattr(ref, "dtype") or not _is_float(ref):
            continue
        diff += float(((_f64(ours[name]) - _f64(ref)) ** 2).sum())
        size += float(((_f64(ref) - _f64(initial[name])) ** 2).sum())
    if size == 0.0:
        return 0.0 if diff == 0.0 else math.inf
    return math.sqrt(diff / size)


def _is_float(tensor: Any) -> bool:
    dtype = str(tensor.dtype)
    return "float" in dtype or "bfloat" in dtype


def _f64(tensor: Any) -> Any:
    return tensor.double() if hasattr(tensor, "double") else tensor.astype("float64")


def max_abs_difference(a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
    worst = 0.0
    for name, value in a.items():
        if hasattr(value, "dtype") and _is_float(value):
            worst = max(worst, float(abs(_f64(value) - _f64(b[name])).max()))
    return worst


def markdown_table(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table (pipes inside cells escaped)."""

    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| check | result | measured | criterion |", "|---|---|---|---|"]
    lines += [f"| {cell(r.check)} | **{r.result}** | {cell(r.measured)} | {cell(r.criterion)} |" for r in rows]
    return "\n".join(lines)


def report(rows: Sequence[Row], header: Sequence[str]) -> str:
    passed = sum(r.result == "PASS" for r in rows)
    failed = sum(r.result == "FAIL" for r in rows)
    skipped = sum(r.result == "SKIP" for r in rows)
    summary = f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else "")
    return "\n".join([*header, "", markdown_table(rows), "", summary]) + "\n"


class Budget:
    """The run's time budget: each check gets its own limit, cut to what is left (SKIP when under ``minimum``)."""

    def __init__(self, total_s: float, clock: Callable[[], float] = time.monotonic, minimum_s: float = 20.0) -> None:
        self.clock, self.end, self.minimum_s = clock, clock() + total_s, minimum_s

    def limit(self, wanted_s: float) -> Optional[float]:
        left = self.end - self.clock()
        return None if left < self.minimum_s else min(wanted_s, left)


def throughput_rows(raw: Mapping[str, Any]) -> list[Row]:
    """benchmarks/train_step.py's --json for one case: a row per mode (ours / hand / timm images/s, ratios, % of
    the device's peak where known, graphs after warm-up)."""
    rows = []
    peak = raw.get("peak_flops")
    for key, summary in raw["summary"].items():
        case, mode = key.rsplit(" ", 1)
        speed, ratios = summary["speed"], summary["ratios"]
        measured = " / ".join(f"{loop} {speed[loop]:.0f}" for loop in speed) + " images/s"
        if "timm" in ratios:
            measured += f"; ours÷timm {ratios['timm']:.3f}"
        if "hand" in ratios:
            measured += f", ours÷hand {ratios['hand']:.3f}"
        flops = raw.get("flops_per_image", {}).get(case)
        if peak and flops and "ours" in speed:
            measured += f"; ours {flops[1 if mode == 'train' else 0] * speed['ours'] / peak:.1%} of peak"
        measured += f"; {summary.get('graphs', 0)} graphs after warm-up"
        ok = "timm" in ratios and within(TIMM_RATIO, ratios["timm"]) and summary.get("graphs", 0) == 0
        rows.append(
            Row(
                f"{mode} images/s, `{case}` bf16 + channels-last + compile, batch {raw['args']['batch']}",
                verdict(ok),
                measured,
                f"ours >= {TIMM_RATIO} x timm, 0 graphs after warm-up",
            )
        )
    return rows


def nvidia_driver() -> Optional[str]:
    """The NVIDIA driver's version when ``nvidia-smi`` answers (None when there is no driver)."""
    try:
        result = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = result.stdout.split()
    return (lines[0] if lines else "unknown") if result.returncode == 0 else None


def no_cuda_line() -> Optional[tuple[str, int]]:
    """The one line to print, and the exit status, when this machine has no usable CUDA device (None when it
    has one). No driver: nothing to check (0). A driver that torch cannot use: a failure (1), with the way out,
    since the user meant to check a GPU (a CUDA 13 build under a driver older than 580, typically)."""
    try:
        import torch
    except ImportError as error:
        return f"gpu_check: torch cannot be imported ({error}); nothing run", 1
    if torch.cuda.is_available():
        return None
    build = f"torch {torch.__version__}, built for CUDA {torch.version.cuda}"
    driver = nvidia_driver()
    if driver is None:
        return f"gpu_check: no CUDA device here ({build}); nothing run", 0
    return f"gpu_check: nvidia-smi lists a GPU (driver {driver}) but {build} cannot use it; {_way_out(driver)}", 1


def _way_out(driver: str) -> str:
    """Why torch cannot use a GPU that the driver lists, as far as the versions tell, and what to do."""
    import torch

    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    major = int(driver.split(".")[0]) if driver.split(".")[0].isdigit() else None
    if hidden is not None and not hidden.strip():
        return f"CUDA_VISIBLE_DEVICES={hidden!r} hides them; nothing run"
    if torch.version.cuda is None:
        return "this torch is a CPU-only build: set up the pinned set with bash scripts/setup.sh; nothing run"
    if torch.version.cuda.startswith("13") and major is not None and major < 580:
        return "its CUDA 13 needs driver >= 580: set up the CUDA 12 set with CUDA=12 bash scripts/setup.sh; nothing run"
    return "python -c 'import torch; torch.cuda.init()' says why; nothing run"


# ---------------------------------------------------------------------------------------- the checks (GPU)
def _load_script(name: str, path: Path):
    """A benchmark script as a module (registered under ``name``: dataclasses look their module up by name)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _benchmark():
    return _load_script("bench_train_step", BENCHMARK)


def _full_net(batch: int) -> argparse.Namespace:
    if REHEARSAL:
        return argparse.Namespace(width=0.125, fc_dim=64, num_classes=1000, batch=min(batch, 4), device="cpu")
    return argparse.Namespace(width=1.0, fc_dim=4096, num_classes=1000, batch=batch, device="cuda")


def _device() -> Any:
    import torch

    return torch.device("cpu" if REHEARSAL else "cuda")


def _accelerator() -> str:
    return "cpu" if REHEARSAL else "gpu"


def _rehearsal_overrides() -> list[str]:
    return ["model.compile_backend=aot_eager"] if REHEARSAL else []


def check_step(out: Path) -> list[Row]:
    import torch

    ts = _benchmark()
    device, net = _device(), _full_net(STEP_BATCH)
    case = ts.Case("zf5_spp", (224,))
    batches = ts.make_batches(case, net.batch, STEP_STEPS, 1000, device)
    common = ["model.dropout=0", "trainer.benchmark=false", *_rehearsal_overrides()]
    variants = {
        "eager": [
            "trainer.precision=bf16-mixed",
            "model.compile=false",
            "model.channels_last=false",
            "optim.implementation=foreach",
            *common,
        ],
        "fast": [
            "trainer.precision=bf16-mixed",
            "model.compile=true",
            "model.channels_last=true",
            "optim.implementation=fused",
            *common,
        ],
        "fp32": [
            "trainer.precision=32-true",
            "model.compile=false",
            "model.channels_last=false",
            "optim.implementation=foreach",
            *common,
        ],
    }
    weights, graphs, initial = {}, {}, None
    for name, overrides in variants.items():
        with tempfile.TemporaryDirectory(dir=out) as run_dir:
            cfg = ts.compose_config(case, net, overrides, run_dir)
            switches = ts.switches_from_config(cfg, device)
            if initial is None:
                torch.manual_seed(0)
                initial = {k: v.detach().float().cpu() for k, v in ts.build_module(cfg).model.state_dict().items()}
            before = ts.compiled_graphs()
            torch.manual_seed(0)
            with ts.quiet_lightning():
                _, model = ts.run_ours(cfg, switches, batches, 1, True)
            graphs[name] = ts.compiled_graphs() - before
            weights[name] = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    fast = update_difference(initial, weights["fast"], weights["eager"])
    scale = update_difference(initial, weights["eager"], weights["fp32"])
    ok = within(fast, UPDATE_TOLERANCE) and graphs["fast"] > 0
    return [
        Row(
            f"bf16 training step, compile + channels-last + fused SGD vs eager (`zf5_spp`, 224, batch "
            f"{net.batch}, {STEP_STEPS} steps)",
            verdict(ok),
            f"update differs by {fast:.2%} ({graphs['fast']} graphs compiled; bf16 vs fp32 eager: {scale:.2%})",
            f"<= {UPDATE_TOLERANCE:.0%} of the update",
        )
    ]


def check_graphs(out: Path) -> list[Row]:
    import timm
    import torch
    import torch.nn.functional as F

    ts = _benchmark()  # imports spp_cls, which registers the models in timm
    net, device = _full_net(32), _device()
    with tempfile.TemporaryDirectory(dir=out) as run_dir:
        cfg = ts.compose_config(ts.Case("zf5_spp", (224,)), net, [*FAST_PATH, *_rehearsal_overrides()], run_dir)
    switches = ts.switches_from_config(cfg, device)
    model = switches.prepare(timm.create_model("zf5_spp", **ts.timm_kwargs(cfg)))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, fused=True)
    memory = torch.channels_last

    def train(size: int) -> None:
        x = torch.randn(net.batch, 3, size, size, device=device).contiguous(memory_format=memory)
        y = torch.randint(0, 1000, (net.batch,), device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def test(height: int, width: int) -> None:
        model.eval()
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16):
            model(torch.randn(2, 3, height, width, device=device).contiguous(memory_format=memory))
        model.train()

    start = ts.compiled_graphs()
    for size in (224, 180):
        train(size)
    test(224, 224)
    test(256, 341)  # the first non-square image
    warmup = ts.compiled_graphs() - start
    for size in (224, 180, 224, 180):
        train(size)
    for height, width in FULL_IMAGE_SIZES:
        test(height, width)
    ts.synchronize(device)
    after = ts.compiled_graphs() - start - warmup
    sizes = ", ".join(f"{h}x{w}" for h, w in FULL_IMAGE_SIZES)
    return [
        Row(
            f"graphs compiled after warm-up: training 224/180 alternating, full images {sizes} "
            f"(`zf5_spp`, bf16, channels-last, dynamic={switches.compile_dynamic})",
            verdict(after == 0),
            f"{after} (warm-up: {warmup})",
            "0",
        )
    ]


def _script(*args: str, env: Optional[dict] = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def _tail(result: subprocess.CompletedProcess) -> str:
    """The last line a failed command printed (its error, as a rule)."""
    lines = (result.stderr or result.stdout or "").strip().splitlines()
    return f"exit {result.returncode}: {lines[-1][:300] if lines else ''}"


def check_protocols(out: Path) -> list[Row]:
    import numpy as np

    from spp_cls.evaluation.protocols import PROTOCOLS

    env = dict(os.environ, SPP_CLS_CACHE=str(out / "cache"))
    run = out / "smoke-gpu"
    trained = _script(
        "train.py", "experiment=smoke", f"trainer.accelerator={_accelerator()}", f"hydra.run.dir={run}", env=env
    )
    if trained.returncode != 0:
        return [Row("every test protocol under bf16", "FAIL", f"training the checkpoint failed: {_tail(trained)}", "")]
    names = sorted(PROTOCOLS)
    results = {}
    for precision in ("bf16-mixed", "32-true"):
        folder = out / f"eval-{precision}"
        done = _script(
            "evaluate.py",
            f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}",
            f"protocols=[{','.join(names)}]",
            f"trainer.accelerator={_accelerator()}",
            "trainer.devices=1",
            f"trainer.precision={precision}",
            "save_scores=true",
            f"hydra.run.dir={folder}",
            env=env,
        )
        if done.returncode != 0:
            return [Row(f"every test protocol under {precision}", "FAIL", f"evaluate.py failed: {_tail(done)}", "")]
        results[precision] = (folder, json.loads((folder / "metrics.json").read_text())["protocols"])
    rows = []
    for name in names:
        (bf16_dir, bf16), (fp32_dir, fp32) = results["bf16-mixed"], results["32-true"]
        a, b = (np.load(d / f"scores_{name}_rank0.npz")["scores"] for d in (bf16_dir, fp32_dir))
        diff = float(np.abs(a - b).max()) if a.shape == b.shape and a.size else math.nan
        rows.append(
            Row(
                f"protocol `{name}` under bf16 (evaluate.py, smoke checkpoint)",
                verdict(within(diff, SCORE_TOLERANCE)),
                f"max |Δ score| {diff:.4f} vs fp32; top-1 error {bf16[name]['top1_err']:.3f} (fp32 "
                f"{fp32[name]['top1_err']:.3f}); {bf16[name]['images_per_s']:.0f} images/s",
                f"<= {SCORE_TOLERANCE}",
            )
        )
    return rows


def check_throughput(out: Path) -> list[Row]:
    raw_path = out / "train_step.json"
    sizes = (
        ["--width", "0.125", "--fc-dim", "64", "--batch", "4", "--steps", "2", "--warmup", "1"]
        if REHEARSAL
        else ["--batch", "128", "--steps", "20", "--warmup", "5"]
    )
    # train.py overrides first: after a list option they would be read as its values
    done = _script(
        str(BENCHMARK),
        *FAST_PATH,
        *_rehearsal_overrides(),
        "--models",
        "zf5_spp",
        "--sizes",
        "224",
        *sizes,
        "--repeats",
        "1",
        "--device",
        _device().type,
        "--json",
        str(raw_path),
    )
    (out / "train_step.txt").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        return [Row("images/s: ours vs hand loop vs timm", "FAIL", f"benchmark failed: {_tail(done)}", "")]
    return throughput_rows(json.loads(raw_path.read_text()))


def _jpeg_batch(count: int, seed: int) -> list[bytes]:
    """JPEGs of ImageNet-like sizes (benchmarks/data_throughput.py's generator and size distribution)."""
    import io

    import numpy as np
    from PIL import Image

    bench = _data_benchmark()
    rng = np.random.default_rng(seed)
    files = []
    for i in range(count):
        width, height = bench.image_size(rng)
        buffer = io.BytesIO()
        bench.synthetic_photo(seed * 1000 + i).resize((width, height), Image.Resampling.BICUBIC).save(
            buffer, "JPEG", quality=90
        )
        files.append(buffer.getvalue())
    return files


def _data_benchmark():
    return _load_script("bench_data_throughput", DATA_BENCHMARK)


def check_loader(out: Path) -> list[Row]:
    """GPU JPEG decoding (data.decode_device=cuda): the views nvJPEG gives against the CPU path's for the same
    plans, then the loader's images/s with and without it (benchmarks/data_throughput.py --device cuda)."""
    import random

    import torch

    from spp_cls.data.config import DataConfig
    from spp_cls.data.device_decode import decode_views, view_sample
    from spp_cls.data.folder import collate_skipping
    from spp_cls.data.transforms import TrainView

    files = _jpeg_batch(8 if REHEARSAL else 64, seed=3)
    view = TrainView(DataConfig(reduced_decode=False))

    def batch(encoded: bool) -> dict[str, Any]:
        samples = [view_sample(d, view, 224, random.Random(k), 10**9, encoded=encoded) for k, d in enumerate(files)]
        for sample in samples:
            sample["target"] = 0
        return collate_skipping(samples)

    cpu = batch(False)["image"]
    images, kept, failed = decode_views(batch(True), _device(), "bilinear", 10**9)
    torch.cuda.synchronize() if _device().type == "cuda" else None
    diff = (images.cpu().float() - cpu.float()).abs()
    ok = len(kept) == len(files) and not failed and diff.mean().item() <= DECODE_TOLERANCE
    rows = [
        Row(
            "GPU-decoded training views (nvJPEG) against the CPU path's, same plans",
            verdict(ok),
            f"{len(kept)}/{len(files)} decoded; mean |Δ| {diff.mean().item():.3f}, max {diff.max().item():.0f} "
            "(uint8 levels)",
            f"all decoded, mean |Δ| <= {DECODE_TOLERANCE}",
        )
    ]
    raw_path = out / "data_throughput.json"
    sizes = (
        ["--images", "16", "--batch-size", "4", "--batches", "1", "--warmup", "1", "--workers", "0", "1"]
        + ["--pipelines", "b", "d", "e", "--breakdown", "0"]
        if REHEARSAL
        else ["--images", "2000"]
    )
    done = _script(str(DATA_BENCHMARK), *sizes, "--repeats", "1", "--device", _device().type, "--json", str(raw_path))
    (out / "data_throughput.txt").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        return rows + [Row("loader images/s with GPU decoding", "FAIL", f"benchmark failed: {_tail(done)}", "")]
    rows.append(loader_row(json.loads(raw_path.read_text())))
    return rows


def loader_row(raw: Mapping[str, Any]) -> Row:
    """benchmarks/data_throughput.py's --json: images/s of every pipeline at the most workers measured, and
    (e) GPU decoding against (b), the class-folder pipeline that decodes on the CPU."""
    rates = raw["images_per_s"]  # pipeline -> worker count -> images/s
    workers = max(int(w) for by_workers in rates.values() for w in by_workers)
    figures = {name: by[str(workers)] for name, by in rates.items() if str(workers) in by}
    measured = ", ".join(f"({name}) {rate:.0f}" for name, rate in figures.items()) + f" images/s, {workers} workers"
    if "e" in figures and figures.get("b"):
        measured += f"; (e)/(b) {figures['e'] / figures['b']:.2f}"
    return Row("loader images/s: CPU pipelines and (e) GPU decoding", verdict("e" in figures), measured, "(e) runs")


def ddp_worker(out_file: Path, batch: int, steps: int, warmup: int) -> None:
    """One process of ``torch.distributed.run``: our Lightning step (bf16, channels-last, eager) on on-device
    batches, every rank with its own; rank 0 writes the global images/s."""
    import torch
    from omegaconf import OmegaConf

    ts = _benchmark()
    world, local = int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
    net = _full_net(batch)
    if REHEARSAL:
        device = torch.device("cpu")
    else:
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    case = ts.Case("zf5_spp", (224,))
    run_dir = out_file.parent / f"ddp-{world}"
    cfg = ts.compose_config(
        case,
        net,
        [
            "trainer.precision=bf16-mixed",
            "model.channels_last=true",
            "callbacks=none",
            "logger=none",
            "+trainer.extra.enable_checkpointing=false",
        ],
        str(run_dir),
    )
    OmegaConf.update(cfg, "trainer.devices", world)
    OmegaConf.update(cfg, "trainer.strategy", "ddp" if world > 1 else "auto")
    batches = ts.make_batches(case, net.batch, warmup + steps, 1000, device, seed=local)
    module, trainer = ts.build_module(cfg), ts.build_trainer(cfg)
    window = ts.Window(device, warmup, warmup + steps - 1)
    trainer.callbacks.append(ts.WindowCallback(window))
    with ts.quiet_lightning():
        trainer.fit(module, datamodule=ts.OnDeviceBatches(cfg, batches))
    if trainer.global_rank == 0:
        out_file.write_text(json.dumps({"world": world, "images_per_s": world * net.batch * steps / window.seconds}))


def check_ddp(out: Path) -> list[Row]:
    speed = {}
    for world in (1, 2):
        result_file = out / f"ddp-{world}.json"
        done = _script(
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={world}",
            __file__,
            "_ddp_worker",
            str(result_file),
        )
        if done.returncode != 0 or not result_file.is_file():
            return [Row("NCCL DDP throughput, 2 GPUs vs 1", "FAIL", f"{world} GPU(s) failed: {_tail(done)}", "")]
        speed[world] = json.loads(result_file.read_text())["images_per_s"]
    scaling = speed[2] / (2 * speed[1])
    return [
        Row(
            f"NCCL DDP throughput, 2 GPUs vs 1 (`zf5_spp`, 224, bf16, channels-last, batch {_full_net(128).batch} "
            "per GPU, our Lightning step)",
            verdict(within(DDP_SCALING, scaling)),
            f"2 GPUs {speed[2]:.0f} images/s, 1 GPU {speed[1]:.0f}: {scaling:.0%} scaling",
            f">= {DDP_SCALING:.0%}",
        )
    ]


def check_resume(out: Path) -> list[Row]:
    import torch

    from spp_cls.checkpointing import load_safe

    env = dict(os.environ, SPP_CLS_CACHE=str(out / "cache"))
    common = (
        "experiment=smoke",
        f"trainer.accelerator={_accelerator()}",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "trainer.deterministic=warn",
        "trainer.max_epochs=3",
        "model.dropout=0",
        "callbacks.checkpoint.every_minutes=1e-9",
    )
    whole, killed = out / "ddp-uninterrupted", out / "ddp-killed"
    first = _script("train.py", *common, f"hydra.run.dir={whole}", env=env)
    kill = _script(
        "train.py",
        *common,
        f"hydra.run.dir={killed}",
        "+callbacks.kill._target_=tests.cli.interrupt.KillAt",
        "+callbacks.kill.step=6",
        env=env,
    )
    again = _script("train.py", *common, f"hydra.run.dir={killed}", env=env)
    title = "2-GPU DDP training killed (SIGKILL after step 6 of 12) and resumed vs uninterrupted"
    for what, result, expected in (
        ("uninterrupted", first, 0),
        ("killed", kill, -signal.SIGKILL),
        ("resumed", again, 0),
    ):
        if result.returncode != expected:
            return [Row(title, "FAIL", f"the {what} run: {_tail(result)} (expected exit {expected})", "")]
    ours, theirs = (load_safe(d / "checkpoints" / "last.ckpt")["state_dict"] for d in (killed, whole))
    worst = max_abs_difference(ours, theirs)
    resumed = "resumed at epoch" in (killed / "train.log").read_text()
    exact = all(torch.equal(ours[k], v) for k, v in theirs.items())
    return [
        Row(
            title,
            verdict(resumed and within(worst, RESUME_TOLERANCE)),
            ("bit-identical weights" if exact else f"max |Δ weight| {worst:.2e}")
            + ("" if resumed else "; train.log has no 'resumed at'"),
            f"<= {RESUME_TOLERANCE:g}",
        )
    ]


CHECKS: dict[str, tuple[Callable[[Path], list[Row]], float, int]] = {  # name: (check, time limit s, GPUs needed)
    "step": (check_step, 150, 1),
    "graphs": (check_graphs, 120, 1),
    "protocols": (check_protocols, 150, 1),
    "throughput": (check_throughput, 240, 1),
    "loader": (check_loader, 240, 1),
    "ddp": (check_ddp, 120, 2),
    "resume": (check_resume, 150, 2),
}


# ------------------------------------------------------------------------------------------------ driver
def run_check(name: str, out: Path, limit_s: float) -> list[Row]:
    """One check in its own process group (its compile workers and DDP processes die with it on time-out)."""
    result_file = out / f"{name}.rows.json"
    log = out / f"{name}.log"
    command = [sys.executable, __file__, "_check", name, str(out)]
    start = time.monotonic()
    with open(log, "w") as output:
        process = subprocess.Popen(command, cwd=REPO, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            process.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return [Row(name, "FAIL", f"timed out after {limit_s:.0f} s (log: {log})", "")]
    if process.returncode != 0 or not result_file.is_file():
        last = log.read_text().strip().splitlines()[-1:] or [""]
        return [
            Row(
                name,
                "FAIL",
                f"exit {process.returncode} after {time.monotonic() - start:.0f} s: {last[0][:300]} (log: {log})",
                "",
            )
        ]
    return [Row(**row) for row in json.loads(result_file.read_text())]


def environment_lines(gpus: int) -> list[str]:
    import pytorch_lightning as pl
    import timm
    import torch

    props = torch.cuda.get_device_properties(0)
    driver = nvidia_driver() or "unknown"
    return [
        f"**Device:** {gpus} x {props.name} ({props.total_memory / 2**30:.0f} GiB), NVIDIA driver {driver}",
        f"**Software:** torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}), "
        f"pytorch-lightning {pl.__version__}, timm {timm.__version__}, Python {platform.python_version()}",
        f"**Run:** {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, `bash scripts/gpu_check.sh`",
    ]


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_check"]:  # a check's own process
        name, out = argv[1], Path(argv[2])
        out.mkdir(parents=True, exist_ok=True)  # the driver makes it; a rehearsal by hand may name a new one
        rows = CHECKS[name][0](out)
        (out / f"{name}.rows.json").write_text(json.dumps([asdict(r) for r in rows]))
        return 0
    if argv[:1] == ["_ddp_worker"]:
        ddp_worker(Path(argv[1]), batch=128, steps=20, warmup=5)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(REPO / "outputs" / "gpu_check"), help="folder for the table and logs")
    parser.add_argument("--budget-s", type=float, default=600.0, help="all checks together (seconds)")
    parser.add_argument("--only", nargs="+", choices=list(CHECKS), help="run these checks only")
    args = parser.parse_args(argv)
    if (refusal := no_cuda_line()) is not None:
        print(refusal[0])
        return refusal[1]
    import torch

    gpus = torch.cuda.device_count()
    out = Path(args.out) / datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    out.mkdir(parents=True, exist_ok=True)
    budget = Budget(args.budget_s)
    rows: list[Row] = []
    for name, (_, wanted_s, needs) in CHECKS.items():
        if args.only and name not in args.only:
            continue
        if gpus < needs:
            rows.append(Row(name, "SKIP", f"needs {needs} GPUs, {gpus} here", ""))
            continue
        limit = budget.limit(wanted_s)
        if limit is None:
            rows.append(Row(name, "SKIP", f"no time left in the {args.budget_s:.0f} s budget", ""))
            continue
        print(f"gpu_check: {name} (up to {limit:.0f} s)...", flush=True)
        started = time.monotonic()
        found = run_check(name, out, limit)
        print(
            "\n".join(f"  {r.result} {r.check}: {r.measured}" for r in found)
            + f"  [{time.monotonic() - started:.0f} s]",
            flush=True,
        )
        rows += found
    text = report(rows, environment_lines(gpus))
    (out / "gpu_check.md").write_text(text)
    print()
    print(text, end="")
    print(
        f"\nwritten to {out / 'gpu_check.md'} (logs of each check beside it); paste the table into docs/speed.md, "
        f'section "GPU: not measured"'
    )
    return 1 if any(r.result == "FAIL" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
