"""``python evaluate.py ckpt_path=PATH``: test a trained checkpoint with a test protocol, write metrics.json.

The model and data settings are those saved in the checkpoint by its training run; a ``model.*``/``data.*``
override (or a ``model=``/``data=`` group choice) given on the command line replaces the saved value.
Everything else (trainer, paths, protocol) comes from the evaluate command itself.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from spp_cls.checkpointing import CheckpointError, load_safe
from spp_cls.cli.builders import build_datamodule, build_trainer, pipeline_settings
from spp_cls.cli.errors import exit_on_user_error
from spp_cls.cli.results import write_results
from spp_cls.config.schema import EvaluateConfig
from spp_cls.config.validation import ConfigError, validate_run_config
from spp_cls.evaluation import build_protocol
from spp_cls.lightning import ImageFolderDataModule, SppClassifier
from spp_cls.models import model_name

log = logging.getLogger(__name__)

SAVED_GROUPS = ("model", "data")


def merge_saved_config(saved: dict[str, Any], composed: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """``composed`` with its model/data taken from ``saved``, except for keys the user overrode."""
    for group in SAVED_GROUPS:
        if group not in saved:
            raise CheckpointError(f"the checkpoint's run config has no '{group}' section")
    merged = OmegaConf.merge(composed, {group: saved[group] for group in SAVED_GROUPS})
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group
        if key.split(".")[0] in SAVED_GROUPS and not override.is_delete():
            OmegaConf.update(merged, key, OmegaConf.select(composed, key), merge=False)
    return merged


def _load_weights(module: SppClassifier, state_dict: dict[str, torch.Tensor], ckpt_path: str, name: str) -> None:
    """Load the checkpoint's weights or explain which tensors do not fit the configured model."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong = [k for k in expected if k in state_dict and state_dict[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        details = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}" for k in wrong[:3]]
        details += [f"missing {k}" for k in missing[:3]] + [f"unexpected {k}" for k in unexpected[:3]]
        raise CheckpointError(
            f"checkpoint {ckpt_path} does not fit the configured model {name} with "
            f"{module.hparams.num_classes} classes: " + "; ".join(details)
        )
    module.load_state_dict(state_dict)


def saved_class_index(checkpoint: dict[str, Any]) -> Optional[list[str]]:
    """The class index that the training run's data module saved in the checkpoint (None if absent)."""
    state = checkpoint.get(ImageFolderDataModule.__qualname__)
    return list(state["classes"]) if isinstance(state, dict) and state.get("classes") else None


@exit_on_user_error
def run_evaluation(cfg: DictConfig) -> float:
    """Evaluate ``cfg.ckpt_path`` with ``cfg.protocol``; returns the top-1 error."""
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        raise ConfigError("invalid config:\n  - ckpt_path is required: python evaluate.py ckpt_path=PATH")
    checkpoint = load_safe(cfg.ckpt_path)
    saved = checkpoint.get("hyper_parameters", {}).get("run_config")
    if not isinstance(saved, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{cfg.ckpt_path} is not a checkpoint written by spp-cls training")
    run_cfg = merge_saved_config(saved, cfg, HydraConfig.get().overrides.task)
    validate_run_config(run_cfg, EvaluateConfig)
    try:
        protocol = build_protocol(cfg.protocol, pipeline_settings(run_cfg.data))
    except ValueError as err:
        raise ConfigError(f"protocol: {err}") from err
    name = model_name(run_cfg.model.arch, run_cfg.model.spp)
    module = SppClassifier(
        model=OmegaConf.to_container(run_cfg.model, resolve=True),
        optim=OmegaConf.to_container(run_cfg.optim, resolve=True),
        num_classes=run_cfg.data.num_classes,
        input_size=run_cfg.data.crop_size,
        lr=0.0,
    )
    _load_weights(module, checkpoint["state_dict"], cfg.ckpt_path, name)
    module.set_protocol(protocol)
    log.info("evaluating %s (%s) on %s/%s with the %s protocol", cfg.ckpt_path, name, run_cfg.data.root,
             run_cfg.data.val_split, protocol.name)
    trainer = build_trainer(run_cfg)
    datamodule = build_datamodule(run_cfg, protocol.view(), class_index=saved_class_index(checkpoint))
    metrics = trainer.test(module, datamodule=datamodule)[0]
    results = {
        "checkpoint": str(Path(cfg.ckpt_path).resolve()),
        "model": name,
        "pyramid": list(run_cfg.model.pyramid) if run_cfg.model.spp else None,
        "protocol": protocol.name,
        "data": run_cfg.data.name,
        "split": run_cfg.data.val_split,
        "num_classes": run_cfg.data.num_classes,
        "top1_err": metrics["test/top1_err"],
        "top5_err": metrics["test/top5_err"],
        "images": int(metrics["test/images"]),
        "skipped": int(metrics["test/skipped"]),
        "skipped_shards": datamodule.skip_totals().get("test_skipped_shards", 0),
        "epoch": checkpoint.get("epoch"),
    }
    path = write_results(cfg.paths.output_dir, results)
    print(f"{name} [{protocol.name}] top-1 error {results['top1_err']:.4f}, top-5 error {results['top5_err']:.4f} "
          f"on {results['images']} images ({results['skipped']} skipped) -> {path}")
    return float(results["top1_err"])
