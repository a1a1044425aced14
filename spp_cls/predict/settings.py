"""What a prediction needs from the training run besides the weights: its data settings (the test views' sizes,
the interpolation and the normalisation, ``data.*``), its ``protocol.*`` settings and its class index.

A spp-cls checkpoint holds all three (the resolved run config and the data module's class index). An exported
program holds none of them, so it borrows them from its run (``--run``), or gets the defaults of ``DataConfig``
(ImageNet's 256/224 sizes and channel statistics) with the crop at its input size when that is fixed.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Optional, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from spp_cls.checkpointing import CheckpointError, load_safe, newest_checkpoint
from spp_cls.data.config import DataConfig
from spp_cls.evaluation.config import ProtocolConfig
from spp_cls.lightning.datamodule import saved_datamodule_state
from spp_cls.predict.errors import PredictError

T = TypeVar("T")
#: the paper's test resize over its crop (256 / 224), for a run whose data settings are unknown
RESIZE_OVER_CROP = 256 / 224


@dataclass
class RunSettings:
    """The data and protocol settings of a run and its class index (None: unknown, classes are numbered)."""

    data: DataConfig
    protocol: ProtocolConfig
    classes: Optional[list[str]]


def _as(schema: type[T], node: Any) -> T:
    """A saved config section as its schema's object; keys that the schema no longer has are left out (a
    checkpoint of an earlier version), so that only the values reach the layers, as evaluate.py reads them."""
    known = {f.name for f in fields(schema)}  # type: ignore[arg-type]
    plain = {k: v for k, v in (node or {}).items() if k in known}
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), plain))  # type: ignore[return-value]


def default_settings(num_classes: int, crop_size: Optional[int]) -> RunSettings:
    """``DataConfig``'s defaults, with the crop at ``crop_size`` (a fixed-size program's side) when given."""
    data = DataConfig(name="unknown", root="", num_classes=num_classes)
    if crop_size is not None:
        data = DataConfig(
            name="unknown",
            root="",
            num_classes=num_classes,
            crop_size=crop_size,
            resize_size=round(crop_size * RESIZE_OVER_CROP),
        )
    return RunSettings(data, ProtocolConfig(), None)


def checkpoint_settings(checkpoint: dict[str, Any], path: str | Path) -> RunSettings:
    """The settings saved in a training checkpoint (one written without its run config, e.g. by a test: the
    defaults at its training crop)."""
    hparams = checkpoint.get("hyper_parameters")
    if not isinstance(hparams, dict) or "model" not in hparams:
        raise PredictError(f"{path} is not a checkpoint written by spp-cls training (no model settings in it)")
    state = saved_datamodule_state(checkpoint)
    classes = list(state["classes"]) if state and state.get("classes") else None
    run = hparams.get("run_config")
    if not isinstance(run, dict) or not isinstance(run.get("data"), dict):
        settings = default_settings(int(hparams["num_classes"]), int(hparams["input_size"]))
        settings.classes = classes
        return settings
    try:
        data = _as(DataConfig, run["data"])
        protocol = _as(ProtocolConfig, run.get("protocol"))
    except (OmegaConfBaseException, ValueError) as err:  # a value the schema refuses
        raise PredictError(f"the run settings saved in {path} do not load: {str(err).splitlines()[0]}") from err
    return RunSettings(data, protocol, classes)


def run_settings(path: str | Path) -> RunSettings:
    """The settings of the run at ``path``: a training checkpoint, or a run directory (its newest checkpoint)."""
    path = Path(path)
    if path.is_dir():
        found = newest_checkpoint(path)
        if found is None:
            raise PredictError(f"--run {path}: no checkpoint in that run directory (checkpoints/last.ckpt)")
        path = found
    try:
        checkpoint = load_safe(path, mmap=True)
    except CheckpointError as err:
        raise PredictError(f"--run: {str(err).splitlines()[0]}") from err
    return checkpoint_settings(checkpoint, path)
