"""Multi-view testing cost, in images/s and views/s, of the 96-view feature-map tester against the same 96 views
cropped and run one by one, and against its bare cost, side by side in one run on one model and the same images.

Run from the repository root::

    python benchmarks/multiview.py [--arch zf5] [--width 1.0] [--fc-dim 4096] [--num-classes 1000] [--images 2]
        [--repeats 3] [--threads N] [--json PATH] [--chunk 64] [--seed 0]

Model: ``create_classifier(arch, num_classes=..., input_size=224, spp=True, width=..., fc_dim=...)`` with its
random (kaiming) initial weights (``--width``, ``--fc-dim``, ``--num-classes`` below the paper's 1.0, 4096, 1000
only to make a tiny net for a smoke run), in eval mode, under ``torch.inference_mode()``,
``torch.set_num_threads(cores)`` (``--threads``: on a shared CPU, 1 keeps wall times steady, as two threads on
two busy cores wait for each other at every barrier).
Images: ``--images`` random uint8 500x375 (landscape 4:3) base images, each resized (``resize_short_side``,
antialiased bilinear) to short side s = 224, 256, 300, 360, 448, 560 (long side round(4 s / 3)), then
normalised (ImageNet channel mean / std) to float (3, s, round(4 s / 3)) tensors. Every method gets the same
tensors, all ``--images`` of them at once (one batch).

Methods (96 views an image: 6 scales x the ``eighteen`` layout x 2 mirrors, 3 distinct windows at 224):

(a) the feature-map tester: ``build_protocol("multiview", DataConfig(), ProtocolConfig(
    MultiviewConfig(full_views=False))).scores(model, images)``: conv layers once per scale and mirror, every
    window SPP-pooled on the maps by ``roi_pool``, fc6-fc8 + softmax on the pooled vectors, averaged.
(b) the same 96 views crop by crop: every ``window_positions(h, w, 224, "eighteen")`` window cropped from the
    scaled image and from its mirror, the crops stacked in chunks of ``--chunk`` (64) and run through
    ``model(crops)``, softmax, averaged per image.
(c) the bare cost of (a): ``model.features`` on each scale's images and their mirrors (batched and chunked as
    (a) does, ``chunk_pixels``), and ``model.pre_logits`` + ``model.fc8`` on as many pooled vectors as (a) has
    views (in chunks of ``chunk_views``), the vectors being a preallocated random tensor: nothing else.

Each repeat runs the three methods once each (order rotated every repeat, so noise spreads over all); the table
quotes the median over ``--repeats`` of each method's wall time divided by the number of images, and the same
for the process's CPU time (all threads; less sensitive than wall time to other processes on a shared machine,
though still not immune: they share caches and cores). (a) and (b) must
agree roughly: the mean absolute difference of their averaged scores is reported (not zero: a crop is
zero-padded at its own borders, a window on the full-image map sees its surroundings, and the ``paper``
mapping takes the cells centred inside the window, not exactly the cells a crop computes).

Peak memory: the process's peak RSS (``ru_maxrss``) while a method runs, less its RSS when it starts, with the
peak reset before each method (``/proc/self/clear_refs``, Linux >= 4.0; "n/a" where that is not writable).

Stages of (a): thin timing wrappers around the functions ``spp_cls.evaluation.multiview`` calls (``features``,
``window_positions`` + ``map_window``, ``pool_boxes`` = ``roi_pool``, ``head_scores`` = fc6-fc8 + softmax) and
``size_groups`` (stacking a scale's images), installed in this process only, during the timed runs of (a)
(a few hundred Python calls a run: microseconds). "other" is the rest: mirror + concatenation before the conv
layers, the box tensor, ``index_add_``, the per-scale loop.

Default size: 2 images x 3 repeats of full-width ZF-5, a few minutes on a 2-core CPU (docs/speed.md has the
measured times). ``--json PATH`` saves every raw number.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional, Sequence

import torch
import torchvision
from torch import nn

import spp_cls.evaluation.multiview as mv_module
import spp_cls.evaluation.protocols as protocols_module
from spp_cls.data.config import DataConfig
from spp_cls.data.transforms import resize_short_side
from spp_cls.evaluation.config import MultiviewConfig, ProtocolConfig
from spp_cls.evaluation.protocols import MultiView, build_protocol
from spp_cls.evaluation.windows import window_positions
from spp_cls.models import ARCHITECTURES, create_classifier

BASE_SIZE = (375, 500)  # (H, W) of the base images: ImageNet's most common landscape size
LAYOUT = "eighteen"
METHODS = ("a", "b", "c")
TITLES = {
    "a": "(a) feature-map tester `MultiView.scores` (conv once per scale + mirror, roi_pool, fc)",
    "b": "(b) the same 96 views crop by crop (`model(crops)`, chunks of {chunk})",
    "c": "(c) bare cost: `model.features` per scale + mirror, fc6-fc8 on random pooled vectors",
}
CONV_STAGE = "conv layers (features)"
FC_STAGE = "fc6-fc8 + softmax (head_scores)"
GOAL_B_OVER_A = 1.8
GOAL_A_OVER_C = 1.15


# ------------------------------------------------------------------------------------------------ inputs
def make_images(count: int, scales: Sequence[int], settings: DataConfig, seed: int) -> list[list[torch.Tensor]]:
    """``count`` random base images, each resized to every scale and normalised: [image][scale] (3, s, 4s/3)."""
    generator = torch.Generator().manual_seed(seed)
    mean = torch.tensor(settings.mean).view(3, 1, 1)
    std = torch.tensor(settings.std).view(3, 1, 1)
    images = []
    for _ in range(count):
        base = torch.randint(0, 256, (3, *BASE_SIZE), dtype=torch.uint8, generator=generator)
        per_scale = []
        for s in scales:
            resized = resize_short_side(base, s, settings.interpolation)
            assert tuple(resized.shape[-2:]) == (s, round(4 * s / 3)), resized.shape
            per_scale.append(((resized.float() / 255 - mean) / std).contiguous())
        images.append(per_scale)
    return images


# ----------------------------------------------------------------------------------------------- methods
def method_a(protocol: MultiView, model: nn.Module, images: list) -> tuple[torch.Tensor, torch.Tensor]:
    return protocol.scores(model, images)


def method_b(model: nn.Module, images: list, window: int, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every window of every scale cropped from the image and from its mirror, run as crops in chunks."""
    jobs: list[tuple[int, torch.Tensor, int, int]] = []  # (image, source tensor, x0, y0)
    for i, per_scale in enumerate(images):
        for scaled in per_scale:
            h, w = scaled.shape[-2:]
            windows = window_positions(h, w, window, LAYOUT)
            for source in (scaled, scaled.flip(-1)):
                jobs.extend((i, source, win.x0, win.y0) for win in windows)
    sums: Optional[torch.Tensor] = None
    views = torch.zeros(len(images))
    for start in range(0, len(jobs), chunk):
        part = jobs[start : start + chunk]
        crops = torch.stack([src[:, y0 : y0 + window, x0 : x0 + window] for _, src, x0, y0 in part])
        scores = model(crops).softmax(dim=-1)
        owner = torch.tensor([i for i, *_ in part])
        if sums is None:
            sums = scores.new_zeros(len(images), scores.shape[-1])
        sums.index_add_(0, owner, scores)
        views.index_add_(0, owner, torch.ones(len(part)))
    assert sums is not None
    return sums / views[:, None], views


def method_c(model: nn.Module, images: list, protocol: MultiView, pooled: torch.Tensor) -> int:
    """The conv layers on each scale's images + mirrors (chunked as (a)), fc6-fc8 on (a)'s number of views."""
    fmv = protocol.views
    rows = 0
    for scale_images in zip(*images):
        group = torch.stack(list(scale_images))
        height, width = group.shape[-2:]
        per_view = 2 * len(window_positions(height, width, fmv.window, fmv.layout))
        per_chunk = max(1, fmv.chunk_pixels // (2 * height * width))
        for start in range(0, group.shape[0], per_chunk):
            chunk = group[start : start + per_chunk]
            model.features(torch.cat([chunk, chunk.flip(-1)]))
            views = per_view * chunk.shape[0]
            for first in range(0, views, fmv.chunk_views):
                model.fc8(model.pre_logits(pooled[: min(fmv.chunk_views, views - first)]))
                rows += min(fmv.chunk_views, views - first)
    return rows


# ------------------------------------------------------------------------------------ stage timing of (a)
class StageTimer:
    """Wraps the functions the feature-map tester calls, adding their wall time to named stages."""

    WRAPPED = (
        (mv_module, "features", CONV_STAGE),
        (mv_module, "window_positions", "window mapping"),
        (mv_module, "map_window", "window mapping"),
        (mv_module, "pool_boxes", "roi_pool (pool_boxes)"),
        (mv_module, "head_scores", FC_STAGE),
        (protocols_module, "size_groups", "stacking (size_groups)"),
    )

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._depth = 0

    def _wrap(self, fn: Callable, stage: str) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._depth += 1
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._depth -= 1
                if self._depth == 0:  # never count a nested call twice
                    self.seconds[stage] += time.perf_counter() - start
                self.calls[stage] += 1

        return timed

    @contextmanager
    def installed(self) -> Iterator["StageTimer"]:
        originals = [(module, name, getattr(module, name)) for module, name, _ in self.WRAPPED]
        try:
            for module, name, stage in self.WRAPPED:
                setattr(module, name, self._wrap(getattr(module, name), stage))
            yield self
        finally:
            for module, name, fn in originals:
                setattr(module, name, fn)


# ------------------------------------------------------------------------------------------------ memory
def _rss_kib() -> Optional[int]:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak() -> bool:
    """Reset the peak RSS to the current RSS (Linux); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


@contextmanager
def peak_memory(out: dict) -> Iterator[None]:
    """out["peak_mib"]: the peak RSS while the block runs less the RSS when it starts (None: unknown)."""
    ok = reset_peak()
    before = _rss_kib()
    try:
        yield
    finally:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        out["peak_mib"] = (peak - before) / 1024 if ok and before is not None else None


# ---------------------------------------------------------------------------------------------- reporting
def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def conv_pixel_ratio(scales: Sequence[int], window: int, views: int) -> float:
    """Pixels through the conv layers crop by crop over pixels of the whole images + mirrors."""
    return views * window * window / sum(2 * s * round(4 * s / 3) for s in scales)


def fmt_mib(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--arch", default="zf5", choices=sorted(ARCHITECTURES))
    parser.add_argument("--width", type=float, default=1.0, help="conv channel multiplier (1.0: the paper's net)")
    parser.add_argument("--fc-dim", type=int, default=4096, help="fc6/fc7 width (4096: the paper's net)")
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument(
        "--images", type=int, default=2, help="images (one batch); ~27 s each per repeat at width 1 on 2 cores"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=64, help="crops per model call in (b)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch CPU threads (default: cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="save every raw number here")
    args = parser.parse_args(argv)
    if min(args.images, args.repeats, args.chunk, args.fc_dim, args.num_classes, args.threads) < 1 or args.width <= 0:
        parser.error("--images, --repeats, --chunk, --fc-dim, --num-classes and --threads must be >= 1, --width > 0")

    wall_start = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    command = "python benchmarks/multiview.py" + ("" if not sys.argv[1:] else " " + shlex.join(sys.argv[1:]))
    machine = (
        f"{cpu_name()}, {os.cpu_count()} cores ({torch.get_num_threads()} torch threads), "
        f"torch {torch.__version__}, torchvision {torchvision.__version__}, Python {platform.python_version()}"
    )

    settings = DataConfig()
    protocol = build_protocol("multiview", settings, ProtocolConfig(MultiviewConfig(full_views=False)))
    assert isinstance(protocol, MultiView)
    scales, window = protocol.scales, protocol.window
    model = create_classifier(
        arch=args.arch,
        num_classes=args.num_classes,
        input_size=settings.crop_size,
        spp=True,
        width=args.width,
        fc_dim=args.fc_dim,
    )
    model.eval()
    images = make_images(args.images, scales, settings, args.seed)
    views_per_image = sum(2 * len(window_positions(s, round(4 * s / 3), window, LAYOUT)) for s in scales)
    pooled = torch.randn(protocol.views.chunk_views, model.pre_logits.fc6.in_features).relu_()

    print(
        f"# multi-view testing: {args.arch} width {args.width}, {args.images} images x {len(scales)} scales "
        f"{list(scales)} ({views_per_image} views an image), {args.repeats} repeats",
        flush=True,
    )

    times: dict[str, list[float]] = {m: [] for m in METHODS}
    cpu_times: dict[str, list[float]] = {m: [] for m in METHODS}
    memory: dict[str, list[Optional[float]]] = {m: [] for m in METHODS}
    stages: list[dict[str, float]] = []
    results: dict[str, torch.Tensor] = {}
    view_counts: dict[str, list[float]] = {}
    with torch.inference_mode():
        # warm-up: thread pool and the crop-size primitives (the timed repeats take the median anyway)
        model(images[0][0][:, :window, :window].unsqueeze(0))
        model.features(images[0][0].unsqueeze(0))

        for repeat in range(args.repeats):
            order = METHODS[repeat % 3 :] + METHODS[: repeat % 3]
            for method in order:
                mem: dict[str, Optional[float]] = {}
                timer = StageTimer()
                cpu_start = time.process_time()
                with peak_memory(mem):
                    if method == "a":
                        with timer.installed():
                            start = time.perf_counter()
                            scores, views = method_a(protocol, model, images)
                            elapsed = time.perf_counter() - start
                        stage_times = dict(timer.seconds)
                        stage_times["total"] = elapsed
                        stages.append(stage_times)
                    elif method == "b":
                        start = time.perf_counter()
                        scores, views = method_b(model, images, window, args.chunk)
                        elapsed = time.perf_counter() - start
                    else:
                        start = time.perf_counter()
                        rows = method_c(model, images, protocol, pooled)
                        elapsed = time.perf_counter() - start
                        assert rows == views_per_image * args.images, (rows, views_per_image)
                cpu_times[method].append((time.process_time() - cpu_start) / args.images)
                if method in ("a", "b"):
                    results[method] = scores.float()
                    view_counts[method] = views.tolist()
                times[method].append(elapsed / args.images)
                memory[method].append(mem["peak_mib"])
                print(
                    f"  repeat {repeat + 1}/{args.repeats} ({method}): {elapsed / args.images:.2f} s/image", flush=True
                )

    for m in ("a", "b"):
        assert all(v == views_per_image for v in view_counts[m]), (m, view_counts[m])
    median = {m: statistics.median(times[m]) for m in METHODS}
    cpu_median = {m: statistics.median(cpu_times[m]) for m in METHODS}
    peak = {
        m: (max(v for v in memory[m] if v is not None) if any(v is not None for v in memory[m]) else None)
        for m in METHODS
    }
    diff = (results["a"] - results["b"]).abs()
    top1_agree = int((results["a"].argmax(-1) == results["b"].argmax(-1)).sum())
    mean_score = float(results["a"].abs().mean())
    cosine = float(torch.nn.functional.cosine_similarity(results["a"], results["b"], dim=-1).mean())
    b_over_a = median["b"] / median["a"]
    a_over_c = median["a"] / median["c"]
    pixel_ratio = conv_pixel_ratio(scales, window, views_per_image)

    print()
    print(f"Machine: {machine}")
    print(f"Command: `{command}`")
    if (args.width, args.fc_dim, args.num_classes) != (1.0, 4096, 1000):
        print(
            f"Note: width {args.width}, fc {args.fc_dim}, {args.num_classes} classes: not the paper's full-size net "
            "(1.0, 4096, 1000)"
        )
    print()
    print(f"{args.images} images x {views_per_image} views, median of {args.repeats} repeats:")
    print()
    print(
        "| method | s/image | images/s | views/s | vs (a) | vs (c) | CPU s/image | CPU vs (a) | CPU vs (c) "
        "| peak RSS delta (MiB) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for m in METHODS:
        t, c = median[m], cpu_median[m]
        print(
            f"| {TITLES[m].format(chunk=args.chunk)} | {t:.2f} | {1 / t:.3f} | {views_per_image / t:.1f} | "
            f"{t / median['a']:.2f}x | {t / median['c']:.2f}x | {c:.2f} | {c / cpu_median['a']:.2f}x | "
            f"{c / cpu_median['c']:.2f}x | {fmt_mib(peak[m])} |"
        )
    print()
    print("Wall s/image per repeat: " + "; ".join(f"({m}) " + ", ".join(f"{t:.2f}" for t in times[m]) for m in METHODS))
    print()
    met = lambda ok: "met" if ok else "MISSED"  # noqa: E731
    print(
        f"- (b)/(a) = {b_over_a:.2f}x  (goal >= {GOAL_B_OVER_A}x: {met(b_over_a >= GOAL_B_OVER_A)}); "
        f"theoretical conv-pixel ratio 96*224^2 / sum 2*s*round(4s/3) = {pixel_ratio:.2f}x"
    )
    print(
        f"- (a)/(c) = {a_over_c:.2f}x  (goal <= {GOAL_A_OVER_C}x, i.e. at most 15 % slower than the bare cost: "
        f"{met(a_over_c <= GOAL_A_OVER_C)})"
    )
    print(
        f"- on CPU time: (b)/(a) = {cpu_median['b'] / cpu_median['a']:.2f}x, (a)/(c) = "
        f"{cpu_median['a'] / cpu_median['c']:.2f}x"
    )
    print(
        f"- (a) vs (b) scores: mean |diff| {float(diff.mean()):.3g} (max {float(diff.max()):.3g}; mean score "
        f"{mean_score:.3g}, i.e. {float(diff.mean()) / mean_score:.1%} of it), cosine {cosine:.4f}, "
        f"top-1 agrees on {top1_agree}/{args.images} images"
    )

    # the stages of the repeat of (a) whose total is the median one: one consistent run, not medians per stage
    median_run = sorted(stages, key=lambda s: s["total"])[(len(stages) - 1) // 2]
    stage_times = {k: v / args.images for k, v in median_run.items()}
    named = [k for k in stage_times if k != "total"]
    total = stage_times["total"]
    other = total - sum(stage_times[k] for k in named)
    conv, fc = stage_times.get(CONV_STAGE, 0.0), stage_times.get(FC_STAGE, 0.0)
    overhead = total - conv - fc
    print()
    print("Stages of (a), s/image (the median-total repeat of (a); wrappers around the functions it calls):")
    print()
    print("| stage | s/image | share |")
    print("|---|---:|---:|")
    order = ["stacking (size_groups)", CONV_STAGE, "window mapping", "roi_pool (pool_boxes)", FC_STAGE]
    for k in order + [k for k in named if k not in order]:
        if k in stage_times:
            print(f"| {k} | {stage_times[k]:.3f} | {stage_times[k] / total:.1%} |")
    print(f"| other (mirror + cat, box tensor, index_add_, loop) | {other:.3f} | {other / total:.1%} |")
    print(f"| total | {total:.3f} | 100% |")
    print()
    print(
        f"- (a) beyond its own conv + fc time: {overhead:.3f} s/image = {overhead / (conv + fc):.1%} of conv + fc "
        f"(the part of (a)/(c) that does not depend on how fast the conv layers ran in each method's turn; "
        f"(c) also pays the mirror + cat, part of 'other')"
    )

    wall = time.perf_counter() - wall_start
    print()
    print(f"Wall time: {wall:.0f} s")
    if args.json:
        raw = dict(
            command=command,
            machine=machine,
            args=vars(args),
            scales=list(scales),
            window=window,
            views_per_image=views_per_image,
            seconds_per_image=times,
            median_seconds_per_image=median,
            cpu_seconds_per_image=cpu_times,
            median_cpu_seconds_per_image=cpu_median,
            peak_rss_delta_mib=memory,
            ratios=dict(b_over_a=b_over_a, a_over_c=a_over_c, conv_pixel_ratio=pixel_ratio),
            goals=dict(b_over_a_min=GOAL_B_OVER_A, a_over_c_max=GOAL_A_OVER_C),
            agreement=dict(
                mean_abs_diff=float(diff.mean()),
                max_abs_diff=float(diff.max()),
                mean_score=mean_score,
                cosine=cosine,
                top1_agree=top1_agree,
            ),
            stages_seconds_per_run=stages,
            stages_median_run_seconds_per_image=dict(stage_times, other=other),
            overhead_beyond_conv_fc_seconds_per_image=overhead,
            wall_seconds=wall,
        )
        with open(args.json, "w") as f:
            json.dump(raw, f, indent=2)
        print(f"Raw numbers: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
