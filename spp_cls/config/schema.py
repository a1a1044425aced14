"""Structured-config schema of ``conf/``: Hydra rejects a misspelled key or a wrongly typed value while it
composes the config, before any code of ours runs. Value checks that need more than a type (sizes, paths,
choices) live beside the code that uses the values and are run together by ``validation.py``.

The schema composes the nodes of the layers that receive them, so that each setting is declared once:
``data`` is ``spp_cls.data.config.DataConfig`` and ``protocol`` ``spp_cls.evaluation.config.ProtocolConfig``
(the data and evaluation layers get them back with ``OmegaConf.to_object``). The other groups are declared
here: ``model`` and ``optim`` become keyword arguments of the Lightning module, ``trainer`` of Lightning's
``Trainer``.

``register_configs`` (called by train.py and evaluate.py) puts the schemas in Hydra's ConfigStore, where
``conf/train.yaml`` and ``conf/evaluate.yaml`` start their defaults lists with them.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import MISSING, OmegaConf

from spp_cls.data.config import DataConfig
from spp_cls.evaluation.config import ProtocolConfig, scaled_size
from spp_cls.models.architectures import ARCHITECTURES
from spp_cls.models.lrn import caffe_input_scale


@dataclass
class ModelConfig:
    arch: str = "zf5"
    spp: bool = True
    pyramid: List[int] = field(default_factory=lambda: [6, 3, 2, 1])
    width: float = 1.0
    fc_dim: int = 4096
    dropout: float = 0.5
    lrn: str = "within_channel"
    # units of the Caffe input (0-255, mean subtracted) in one unit of the network's input: the LRN's alpha (set for
    # that input) is multiplied by its square; derived from data.std (255 x their mean); 1: alpha as in Caffe
    lrn_input_scale: float = "${spp_lrn_scale:${data.std}}"  # type: ignore[assignment]
    # no-SPP last pool: paper_bins (6x6 bins at the training size; Table 1's pool5 at 224) | paper_window (Table 1's
    # window whatever the size: fewer bins below 224; the start-up validation refuses it unless chosen here)
    baseline_pool: str = "paper_bins"
    init: str = "kaiming"
    # a timm backbone (model=timm, docs/backbones.md): its timm name (conf/model/timm.yaml sets arch to it too);
    # null: the paper network model.arch. pretrained: timm's weights for it, from pretrained_file when given (a local
    # file), else from timm's hub; backbone_kwargs: further timm.create_model arguments (e.g. drop_path_rate)
    backbone: Optional[str] = None
    pretrained: bool = False
    pretrained_file: Optional[str] = None
    backbone_kwargs: Dict[str, Any] = field(default_factory=dict)
    # how the network runs, not what it is (docs/speed.md)
    channels_last: bool = False  # weights and inputs in channels-last memory format (tensor cores' layout)
    compile: bool = False  # torch.compile the network (in place: checkpoints keep their keys)
    compile_dynamic: Optional[bool] = (
        True  # true: one graph for every input size; null: torch's choice; false: per size
    )
    compile_mode: Optional[str] = None  # null (default) | reduce-overhead | max-autotune | max-autotune-no-cudagraphs
    compile_backend: str = "inductor"


@dataclass
class OptimConfig:
    """``optim``: the paper's / AlexNet's recipe by default (recipe=modern changes it: docs/recipe.md)."""

    lr: float = 0.01  # for an optimizer step of base_batch_size images
    base_batch_size: int = 128
    # the step batch data.batch_size x trainer.accumulate_grad_batches rescales lr: linear | sqrt | none
    lr_scaling: str = "linear"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    # plateau: /10 when val top-1 error stalls, at most lr_drops times | step: at step_milestones | cosine
    scheduler: str = "plateau"
    lr_factor: float = 0.1
    lr_drops: int = 2
    plateau_patience: int = 3  # epochs
    plateau_threshold: float = 1e-3
    step_milestones: List[int] = field(default_factory=lambda: [30, 60])  # epochs
    implementation: str = "auto"  # auto (fused on a GPU: SGD, AdamW) | fused | foreach | for_loop
    # the modern recipe (docs/recipe.md); the defaults are the paper's
    name: str = "sgd"  # sgd (the paper's, torch) | adamw | lamb | lion (timm's create_optimizer_v2)
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])  # optim.name != sgd
    eps: float = 1e-8  # optim.name != sgd (those that have one)
    warmup_epochs: float = 0.0  # scheduler=cosine: linear warmup over this many epochs (fractions allowed)
    label_smoothing: float = 0.0  # of the training cross-entropy (validation reports the plain one)
    mixup_alpha: float = 0.0  # > 0: MixUp (torchvision) on each training batch, Beta(alpha, alpha)
    cutmix_alpha: float = 0.0  # > 0: CutMix; with mixup_alpha too, one of the two per batch, each half the time


@dataclass
class TrainerConfig:
    """Arguments of ``pytorch_lightning.Trainer``; ``extra`` passes any other Trainer argument through."""

    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: Any = "auto"
    precision: Any = "32-true"
    max_epochs: int = 70
    accumulate_grad_batches: int = 1
    gradient_clip_val: Optional[float] = None
    deterministic: Any = False
    benchmark: Optional[bool] = None
    check_val_every_n_epoch: int = 1
    limit_train_batches: Any = None
    limit_val_batches: Any = None
    fast_dev_run: Any = False
    num_sanity_val_steps: int = 2
    log_every_n_steps: int = 50
    enable_progress_bar: Optional[bool] = None  # null: only on a terminal (log files get one line per epoch)
    extra: Dict[str, Any] = field(default_factory=dict)


@dataclass
class PathsConfig:
    root_dir: str = MISSING
    log_dir: str = MISSING
    cache_dir: str = MISSING
    output_dir: str = MISSING


@dataclass
class RunConfig:
    """Everything common to training and evaluation runs."""

    task_name: str = MISSING
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    callbacks: Dict[str, Any] = field(default_factory=dict)
    logger: Dict[str, Any] = field(default_factory=dict)
    paths: PathsConfig = field(default_factory=PathsConfig)
    tags: List[str] = field(default_factory=list)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)  # settings of the test protocols


@dataclass
class TrainConfig(RunConfig):
    # "auto": resume from the newest complete checkpoint of this run dir, if any; null: start fresh; else a path.
    ckpt_path: Optional[str] = "auto"
    # which checkpoint the after-training validation and protocols test: last (the final model, as the paper
    # reports) | best (lowest validation error: selected on the split it then reports)
    eval_checkpoint: str = "last"
    # which weights of that checkpoint: ema (the EMA of callbacks=ema, when the run kept one; else its only
    # weights) | raw (the optimizer's weights); training's own validations follow it too
    eval_weights: str = "ema"
    # after training, validate that checkpoint (eval_checkpoint) and write metrics.json into the run dir
    validate_best: bool = True
    # then test it with these protocols (evaluate.py's) into <run>/eval/; those that need SPP are skipped for
    # a model without it
    evaluate_protocols: List[str] = field(default_factory=list)


@dataclass
class EvaluateConfig(RunConfig):
    ckpt_path: Any = MISSING  # a path, or a list of paths (an ensemble: scores averaged)
    protocols: List[str] = field(default_factory=lambda: ["center"])
    save_scores: bool = False  # per-image scores of every protocol as scores_<protocol>_rank<r>.npz
    eval_weights: str = "ema"  # ema (the checkpoint's EMA weights, when its run kept one) | raw


def run_dir() -> str:
    """The job's output directory; before a job starts (``--cfg job``), the directory it will get."""
    hydra = HydraConfig.get()
    if not OmegaConf.is_missing(hydra.runtime, "output_dir") and hydra.runtime.output_dir:
        return hydra.runtime.output_dir
    if hydra.mode == RunMode.MULTIRUN:
        return f"{hydra.sweep.dir}/{hydra.sweep.subdir}"
    return hydra.run.dir


#: the smallest ratio of last-conv map sides, small training size to crop, that keeps the paper's multi-size
#: geometry (ZF-5: 10/13 = 0.77 at 180/224; Overfeat: 14/18 = 0.78)
MULTI_SIZE_MAP_RATIO = 0.75


def multi_size_map_ratio(arch: str, small: int, crop_size: int) -> float:
    """Side of the last conv map at the small training size over its side at the crop size."""
    net = ARCHITECTURES[str(arch)]
    return net.feature_size(int(small)) / max(1, net.feature_size(int(crop_size)))


def small_size(arch: str, crop_size: int) -> int:
    """Multi-size training's second size: the paper's 180 scaled to the crop (``scaled_size``), raised until the
    last conv map keeps ``MULTI_SIZE_MAP_RATIO`` of its side at the crop. At 224 it is 180 for every network;
    at 112, ZF-5 and Convnet*-5 get 95 (5x5 against 6x6; 90 would give 4x4) and Overfeat 90 (7x7 against 8x8)."""
    size = scaled_size(180, crop_size)
    if str(arch) not in ARCHITECTURES:
        return size  # the start-up validation names the unknown model.arch
    while size < int(crop_size) and multi_size_map_ratio(arch, size, crop_size) < MULTI_SIZE_MAP_RATIO:
        size += 1
    return size


def lrn_scale(std: Any) -> float:
    """``model.lrn_input_scale`` for input normalised by ``data.std`` (see spp_cls/models/lrn.py)."""
    return caffe_input_scale(list(std))


PAPER_EPOCHS = {"zf5": 70}  # paper §3: 70 epochs for ZF-5, 90 for the others


def paper_epochs(arch: str) -> int:
    return PAPER_EPOCHS.get(str(arch), 90)


def tasks_per_node(devices: Any) -> int:
    """A cluster job's processes per node: one per device, so the device count must be a number."""
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        raise ValueError(
            f"trainer.devices={devices!r}: the submitit launchers start one process per device, so give "
            "the number of devices per node, e.g. trainer.devices=4"
        )
    return devices


def gpus_per_node(accelerator: str, devices: Any) -> Optional[int]:
    """A cluster job's GPUs per node: the trainer's devices, none for a CPU run."""
    return None if str(accelerator) == "cpu" else tasks_per_node(devices)


def task_cpus(num_workers: Any) -> int:
    """CPUs per training process: its loader workers and itself."""
    if num_workers == "auto":
        raise ValueError(
            "data.num_workers=auto: a cluster job's CPUs per task are its loader workers + 1, so give "
            "data.num_workers a number (e.g. the node's cores per GPU, less one)"
        )
    return int(num_workers) + 1


def register_configs() -> None:
    """Register the schemas for the defaults lists of conf/{train,evaluate}.yaml and the resolvers.

    conf/hydra/launcher/submitit_{slurm,local}.yaml carry the names of hydra-submitit-launcher's own configs
    (the names its users know), so Hydra merges them into the plugin's schema, which supplies every key they do
    not set. Hydra calls that matching deprecated; the note about it is silenced here.
    """
    warnings.filterwarnings(
        "ignore", message=r"\s*'hydra/launcher/submitit_(slurm|local)' is validated against ConfigStore"
    )
    OmegaConf.register_new_resolver("spp_run_dir", run_dir, replace=True)
    OmegaConf.register_new_resolver("spp_cwd", os.getcwd, replace=True)
    OmegaConf.register_new_resolver("spp_scaled", scaled_size, replace=True)
    OmegaConf.register_new_resolver("spp_paper_epochs", paper_epochs, replace=True)
    OmegaConf.register_new_resolver("spp_small_size", small_size, replace=True)
    OmegaConf.register_new_resolver("spp_lrn_scale", lrn_scale, replace=True)
    OmegaConf.register_new_resolver("spp_tasks", tasks_per_node, replace=True)
    OmegaConf.register_new_resolver("spp_gpus", gpus_per_node, replace=True)
    OmegaConf.register_new_resolver("spp_task_cpus", task_cpus, replace=True)
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainConfig)
    store.store(name="evaluate_schema", node=EvaluateConfig)
