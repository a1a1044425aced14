"""``python evaluate.py ckpt_path=PATH protocols=[...]``: test a checkpoint (or an ensemble) with the paper's
test protocols; write metrics.json (one entry per protocol) and a markdown table.

The model and data settings are those saved in the checkpoint by its training run; a ``model.*``/``data.*``
override (or a ``model=``/``data=`` group choice) given on the command line replaces the saved value.
Everything else (trainer, paths, protocol) comes from the evaluate command itself.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Optional, Sequence, cast

import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from spp_cls.checkpointing import CheckpointError, load_safe
from spp_cls.cli.builders import as_config, build_datamodule, build_trainer
from spp_cls.cli.environment import run_environment
from spp_cls.cli.errors import exit_on_user_error
from spp_cls.cli.results import protocol_table, save_scores, write_markdown, write_results
from spp_cls.config.schema import EvaluateConfig
from spp_cls.config.validation import ConfigError, validate_run_config
from spp_cls.data.config import DataConfig
from spp_cls.evaluation.config import ProtocolConfig
from spp_cls.evaluation.protocols import PROTOCOLS, build_protocol
from spp_cls.lightning import SppClassifier
from spp_cls.lightning.agreement import leave_together
from spp_cls.lightning.data_quality import skip_totals_of_all
from spp_cls.lightning.datamodule import saved_datamodule_state
from spp_cls.lightning.ema import checkpoint_weights
from spp_cls.lightning.weights import load_weights
from spp_cls.models import model_name

log = logging.getLogger(__name__)

SAVED_GROUPS = ("model", "data")


def merge_saved_config(saved: dict[str, Any], composed: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """``composed`` with its model/data taken from ``saved``, except for keys the user overrode; pretrained
    weights off."""
    for group in SAVED_GROUPS:
        if group not in saved:
            raise CheckpointError(f"the checkpoint's run config has no '{group}' section")
    merged = cast(DictConfig, OmegaConf.merge(composed, {group: saved[group] for group in SAVED_GROUPS}))
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group
        if key.split(".")[0] in SAVED_GROUPS and not override.is_delete():
            OmegaConf.update(merged, key, OmegaConf.select(composed, key), merge=False)
    # the checkpoint's weights replace timm's pretrained ones: never read (or download) those again, so that a
    # run trained from a weights file is evaluated where that file is not
    merged.model.pretrained, merged.model.pretrained_file = False, None
    return merged


def saved_class_index(checkpoint: dict[str, Any]) -> Optional[list[str]]:
    """The class index that the training run's data module saved in the checkpoint (None if absent)."""
    state = saved_datamodule_state(checkpoint)
    return list(state["classes"]) if state and state.get("classes") else None


def _ckpt_paths(cfg: DictConfig) -> list[str]:
    if OmegaConf.is_missing(cfg, "ckpt_path") or not cfg.ckpt_path:
        raise ConfigError(
            "invalid config:\n  - ckpt_path is required: python evaluate.py ckpt_path=PATH (or [PATH,PATH,...])"
        )
    paths = cfg.ckpt_path if OmegaConf.is_list(cfg.ckpt_path) else [cfg.ckpt_path]
    return [str(p) for p in paths]


def _load_member(
    path: str, cfg: DictConfig, overrides: Sequence[str], schema: type
) -> tuple[SppClassifier, DictConfig, dict[str, Any]]:
    """One checkpoint as a module, with its run config (saved model/data + command-line overrides)."""
    checkpoint = load_safe(path)
    saved = checkpoint.get("hyper_parameters", {}).get("run_config")
    if not isinstance(saved, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path} is not a checkpoint written by spp-cls training")
    run_cfg = merge_saved_config(saved, cfg, overrides)
    validate_run_config(run_cfg, schema)
    module = SppClassifier(
        model=cast(dict[str, Any], OmegaConf.to_container(run_cfg.model, resolve=True)),
        optim=cast(dict[str, Any], OmegaConf.to_container(run_cfg.optim, resolve=True)),
        num_classes=run_cfg.data.num_classes,
        input_size=run_cfg.data.crop_size,
        lr=0.0,
    )
    state, weights = checkpoint_weights(checkpoint, cfg.get("eval_weights", "ema"))
    load_weights(module, state, path, model_name(run_cfg.model.arch, run_cfg.model.spp))
    checkpoint["evaluated_weights"] = weights
    return module, run_cfg, checkpoint


def _test_protocol(
    name: str,
    members: list[SppClassifier],
    run_cfg: DictConfig,
    cfg: DictConfig,
    trainer: pl.Trainer,
    class_index: Optional[list[str]],
    output_dir: str | Path,
    keep_scores: bool,
) -> dict[str, Any]:
    """Run one protocol over the test split; its metrics, counts and speed."""
    try:
        protocol = build_protocol(name, as_config(run_cfg.data, DataConfig), as_config(cfg.protocol, ProtocolConfig))
        members[0].set_protocol(protocol, ensemble=[m.model for m in members[1:]], keep_scores=keep_scores)
    except ValueError as err:
        raise ConfigError(f"invalid config:\n  - protocols: {err}") from err
    datamodule = build_datamodule(run_cfg, protocol.view(), class_index=class_index)
    members[0].test_started_at = None
    start = time.monotonic()
    metrics = trainer.test(members[0], datamodule=datamodule, verbose=False)[0]
    seconds = time.monotonic() - (members[0].test_started_at or start)  # from the first batch's fetch on
    images, skipped = int(metrics["test/images"]), int(metrics["test/skipped"])
    # summed over the processes (a collective): each process lost its own shards, and all must decide alike
    lost_shards = skip_totals_of_all(trainer).get("test_skipped_shards", 0)
    expected = datamodule.split_size("test")
    # trainer.extra.limit_test_batches: a part of the split (Lightning: the float 1.0 is all of it, an int N batches)
    limited = not (isinstance(trainer.limit_test_batches, float) and trainer.limit_test_batches == 1.0)
    if limited:
        log.info(
            "protocol %s: trainer.limit_test_batches=%s tested %d of the %d images",
            name,
            trainer.limit_test_batches,
            images + skipped,
            expected,
        )
    if images + skipped > expected or (images + skipped < expected and not lost_shards and not limited):
        raise RuntimeError(
            f"protocol {name} processed {images} + {skipped} skipped images of a {expected}-image "
            f"split: images were counted twice or lost"
        )
    views = float(metrics["test/views"])
    result: dict[str, Any] = {
        "top1_err": metrics["test/top1_err"],
        "top5_err": metrics["test/top5_err"],
        "images": images,
        "skipped": skipped,
        "skipped_shards": lost_shards,
        "views_per_image": views / max(1, images),
        "images_per_s": images / seconds,
        "views_per_s": views / seconds,
        "seconds": seconds,
    }
    if keep_scores and members[0].kept_scores is not None:
        result["scores_file"] = str(save_scores(output_dir, name, members[0].kept_scores, trainer.global_rank))
    return result


def evaluate(
    paths: Sequence[str],
    cfg: DictConfig,
    overrides: Sequence[str],
    output_dir: str | Path,
    protocols: Sequence[str],
    trainer: Optional[pl.Trainer] = None,
    skip_inapplicable: bool = False,
    save_scores: bool = False,
    schema: type = EvaluateConfig,
) -> dict[str, Any]:
    """Test the checkpoint(s) ``paths`` (an ensemble when several) with each protocol; write metrics.json and
    the markdown table into ``output_dir`` and return the results.

    ``skip_inapplicable``: leave out (with a log line) the protocols the model cannot take, e.g. ``full`` for a
    no-SPP model in a sweep that mixes both (nothing is written when none is left); otherwise that is a
    config error.
    """
    loaded = [_load_member(path, cfg, overrides, schema) for path in paths]
    members, run_cfg, first = [m for m, _, _ in loaded], loaded[0][1], loaded[0][2]
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown or not protocols:
        raise ConfigError(f"invalid config:\n  - protocols={list(protocols)}: choose from {sorted(PROTOCOLS)}")
    if skip_inapplicable and not all(m.model.fixed_input_size is None for m in members):  # any size: SPP, timm
        dropped = [p for p in protocols if PROTOCOLS[p].needs_spp]
        if dropped:
            log.info("not evaluating %s: a model without SPP takes one input size", ", ".join(dropped))
        protocols = [p for p in protocols if not PROTOCOLS[p].needs_spp]
        if not protocols:
            return {}
    names = [model_name(c.model.arch, c.model.spp) for _, c, _ in loaded]
    name = names[0] if len(names) == 1 else f"ensemble of {len(names)} ({', '.join(sorted(set(names)))})"
    log.info(
        "evaluating %s (%s) on %s/%s with %s",
        ", ".join(paths),
        name,
        run_cfg.data.root,
        run_cfg.data.val_split,
        ", ".join(protocols),
    )
    trainer = trainer or build_trainer(run_cfg)
    per_protocol = {
        p: _test_protocol(p, members, run_cfg, cfg, trainer, saved_class_index(first), output_dir, save_scores)
        for p in protocols
    }
    head = per_protocol[protocols[0]]
    results = {
        "checkpoint": str(Path(paths[0]).resolve()) if len(paths) == 1 else [str(Path(p).resolve()) for p in paths],
        "model": name,
        "pyramid": list(run_cfg.model.pyramid) if run_cfg.model.spp else None,
        "protocol": protocols[0],
        "data": run_cfg.data.name,
        "split": run_cfg.data.val_split,
        "num_classes": run_cfg.data.num_classes,
        "top1_err": head["top1_err"],
        "top5_err": head["top5_err"],
        "images": head["images"],
        "skipped": head["skipped"],
        "skipped_shards": head["skipped_shards"],
        "epoch": first.get("epoch"),
        # ema | raw: the weights tested (eval_weights=ema gives raw for a checkpoint trained without EMA)
        "evaluated_weights": [c.get("evaluated_weights") for _, _, c in loaded]
        if len(loaded) > 1
        else first.get("evaluated_weights"),
        "protocols": per_protocol,
    }
    if trainer.is_global_zero:
        results["environment"] = run_environment(trainer.strategy.root_device, trainer.world_size)
        path = write_results(output_dir, results)
        table = protocol_table(results)
        write_markdown(output_dir, paths[0], table)
        print(f"{name}: {len(per_protocol)} protocol(s) on {head['images']} images -> {path}\n{table}")
    return results


@exit_on_user_error
def run_evaluation(cfg: DictConfig) -> float:
    """``evaluate.py``: ``cfg.ckpt_path`` with every protocol of ``cfg.protocols``; returns the first one's
    top-1 error."""
    results = evaluate(
        _ckpt_paths(cfg),
        cfg,
        HydraConfig.get().overrides.task,
        cfg.paths.output_dir,
        list(cfg.protocols),
        save_scores=cfg.save_scores,
    )
    leave_together()
    return float(results["top1_err"])
