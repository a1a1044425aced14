"""Hand-made training run directories (the files of README "Run directories"), for the report's tests: no
training, only the files a run and evaluate.py write."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

import yaml

FAILED_LOG = """[2026-11-21 10:00:00,000][spp_cls.cli.train][INFO] - run directory: {path}
Traceback (most recent call last):
  File "train.py", line 10, in <module>
    main()
RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB
Error executing job with overrides: ['seed=2']
"""


def make_run(
    path: Path,
    *,
    arch: str = "zf5",
    spp: bool = True,
    pyramid: Sequence[int] = (6, 3, 2, 1),
    train_sizes: Optional[Sequence[int]] = None,
    schedule: str = "alternate",
    seed: int = 0,
    data: str = "imagenet",
    crop: int = 224,
    epochs: int = 3,
    lr: float = 0.01,
    status: str = "done",
    top1: float = 0.3,
    top5: float = 0.1,
    curve: Optional[Sequence[float]] = None,
    evals: Optional[dict[str, tuple[float, float]]] = None,
    eval_views: Optional[dict[str, float]] = None,
    task: str = "table2",
    eval_checkpoint: Optional[str] = None,
    config: Optional[dict] = None,
    metrics: Optional[dict] = None,
) -> Path:
    """A run folder: .hydra files, train.log, and when done metrics.json; ``curve`` (val top-1 error fractions
    per epoch) as csv/metrics.csv, with the final re-validation row that training appends; ``evals``
    ({protocol: (top-1, top-5) fractions}) as ``eval/metrics.json``, of the checkpoint the run tested.

    ``eval_checkpoint`` (last | best) writes metrics.json as train.py does now (``eval_checkpoint``,
    ``evaluated_checkpoint``); None as runs did before it (they tested best.ckpt and did not say). ``config``
    is merged into the saved config (nested dicts), ``metrics`` into metrics.json."""
    path.mkdir(parents=True, exist_ok=True)
    config_tree = {
        "task_name": task,
        "seed": seed,
        "model": {"arch": arch, "spp": spp, "pyramid": list(pyramid), "width": 1.0, "fc_dim": 4096, "dropout": 0.5},
        "data": {
            "name": data,
            "root": "/data/" + data,
            "crop_size": crop,
            "resize_size": 256,
            "num_workers": 8,
            "train_sizes": list(train_sizes) if train_sizes else ["${data.crop_size}"],
            "size_schedule": schedule,
        },
        "optim": {"lr": lr, "momentum": 0.9},
        "trainer": {"max_epochs": epochs, "devices": 1},
        "logger": {"csv": {"save_dir": "${paths.output_dir}"}},
        "paths": {"output_dir": str(path)},
    }
    _merge(config_tree, config or {})
    (path / ".hydra").mkdir(exist_ok=True)
    (path / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config_tree, sort_keys=False))
    (path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"model={arch}", f"seed={seed}"]))
    log = f"[2026-11-21 10:00:00,000][spp_cls.cli.train][INFO] - run directory: {path}\n"
    (path / "train.log").write_text(FAILED_LOG.format(path=path) if status == "failed" else log)
    if curve:
        rows = ["epoch,step,train/input_size,val/top1_err,val/top5_err"]
        rows += [f"{e},{10 * e + 9},{crop},{v},0.1" for e, v in enumerate(curve)]
        if status == "done":
            rows.append(f"{len(curve)},{10 * len(curve)},,{top1},{top5}")  # validation of best.ckpt after training
        (path / "csv").mkdir(exist_ok=True)
        (path / "csv" / "metrics.csv").write_text("\n".join(rows) + "\n")
    tested = path / "checkpoints" / f"{eval_checkpoint or 'best'}.ckpt"
    if status == "done":
        written = {
            "val/top1_err": top1,
            "val/top5_err": top5,
            "model": f"{arch}_spp" if spp else arch,
            "epochs": epochs,
            "global_step": 10 * epochs,
            "best_checkpoint": str(path / "checkpoints/best.ckpt"),
            "pyramid": list(pyramid) if spp else None,
        }
        if eval_checkpoint:
            written.update(
                eval_checkpoint=eval_checkpoint,
                evaluated_checkpoint=str(tested),
                last_checkpoint=str(path / "checkpoints/last.ckpt"),
            )
        (path / "metrics.json").write_text(json.dumps({**written, **(metrics or {})}))
    if evals:
        write_evaluation(path / "eval", tested, evals, eval_views)
    return path


def _merge(tree: dict, extra: dict) -> None:
    """``extra`` into ``tree`` in place, nested dicts key by key."""
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(tree.get(key), dict):
            _merge(tree[key], value)
        else:
            tree[key] = value


def write_evaluation(
    folder: Path,
    checkpoint: Path | str | list,
    evals: dict[str, tuple[float, float]],
    views: Optional[dict[str, float]] = None,
) -> Path:
    """An evaluate.py metrics.json with one entry per protocol."""
    views = {
        "center": 1.0,
        "ten_view": 10.0,
        "full": 1.0,
        "full_flip": 2.0,
        "multiview_18": 18.0,
        "multiview_96": 96.0,
        "multiview": 98.0,
        **(views or {}),
    }
    protocols = {
        p: {
            "top1_err": t1,
            "top5_err": t5,
            "images": 50000,
            "views_per_image": views[p],
            "images_per_s": 1.0,
            "views_per_s": 1.0,
        }
        for p, (t1, t5) in evals.items()
    }
    first = next(iter(protocols))
    result = {
        "checkpoint": checkpoint if isinstance(checkpoint, list) else str(checkpoint),
        "model": "x",
        "pyramid": None,
        "protocol": first,
        "data": "imagenet",
        "num_classes": 1000,
        "images": 50000,
        "top1_err": protocols[first]["top1_err"],
        "top5_err": protocols[first]["top5_err"],
        "protocols": protocols,
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(result))
    return folder / "metrics.json"
