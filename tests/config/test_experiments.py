"""Every job of every paper experiment composes with the paper's settings (and shrinks to the embedded set)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from spp_cls.config import register_configs
from spp_cls.lightning.module import RUNTIME_KEYS
from spp_cls.models import ARCHITECTURES, create_classifier
from tests.helpers import REPO

EXPERIMENTS = {  # experiment -> (networks, arms, protocols)
    "table2": (
        {"zf5", "convnet5", "overfeat5", "overfeat7"},
        {"no_spp", "spp_single", "spp_multi"},
        ["center", "ten_view"],
    ),
    "table3": ({"zf5", "overfeat7"}, {"spp_single", "spp_multi"}, ["center", "full"]),
    "table4": ({"overfeat7"}, {"spp_multi"}, ["ten_view", "multiview_18", "multiview_96", "multiview"]),
    "pyramid": ({"zf5"}, {"spp_single", "spp_pyramid30"}, ["center", "ten_view"]),
    "random_size": ({"overfeat7"}, {"spp_multi", "spp_random"}, ["center", "ten_view"]),
}


def _jobs(experiment: str, *extra: str) -> list[tuple[list[str], DictConfig]]:
    """The overrides and composed config of each job of the experiment's multirun (as ``-m`` expands it)."""
    sweep = compose(
        "train", overrides=[f"experiment={experiment}", *extra], return_hydra_config=True
    ).hydra.sweeper.params
    keys = sorted(sweep)
    jobs = []
    for values in itertools.product(*(str(sweep[k]).split(",") for k in keys)):
        overrides = [f"experiment={experiment}", *extra, *(f"{k}={v}" for k, v in zip(keys, values))]
        jobs.append((overrides, compose("train", overrides=overrides)))
    return jobs


@pytest.fixture(scope="module", autouse=True)
def hydra_conf() -> None:
    register_configs()
    with initialize_config_dir(config_dir=str(Path(REPO) / "conf"), version_base="1.3"):
        yield


@pytest.mark.parametrize("experiment", sorted(EXPERIMENTS))
def test_every_job_has_the_papers_settings(experiment: str) -> None:
    networks, arms, protocols = EXPERIMENTS[experiment]
    jobs = _jobs(experiment, "data.root=/data/imagenet")
    assert len(jobs) == len(networks) * len(arms)
    seen = set()
    for overrides, cfg in jobs:
        arm = next(o.split("=")[1] for o in overrides if o.startswith("arm="))
        seen.add((cfg.model.arch, arm))
        assert cfg.data.name == "imagenet" and cfg.data.batch_size == 128 and cfg.optim.lr == 0.01
        assert cfg.model.dropout == 0.5 and cfg.optim.scheduler == "plateau" and cfg.optim.lr_drops == 2
        assert cfg.trainer.max_epochs == (70 if cfg.model.arch == "zf5" else 90)
        assert cfg.model.spp == (arm != "no_spp")
        sizes = list(cfg.data.train_sizes)
        assert sizes == {"spp_multi": [224, 180], "spp_random": [180, 224]}.get(arm, [224])
        assert cfg.data.size_schedule == ("random" if arm == "spp_random" else "alternate")
        assert list(cfg.model.pyramid) == ([4, 3, 2, 1] if arm == "spp_pyramid30" else [6, 3, 2, 1])
        assert list(cfg.evaluate_protocols) == protocols and cfg.task_name == experiment
    assert {a for _, a in seen} == arms and {n for n, _ in seen} == networks


def test_scale_embedded_shrinks_an_experiment() -> None:
    for _, cfg in _jobs("table2", "scale=embedded", "model=zf5"):
        assert cfg.data.name == "synthetic" and cfg.trainer.max_epochs == 4 and cfg.model.width == 0.125
        small = 90 if cfg.model.arch.startswith("overfeat") else 95  # conv5 7x7 / 5x5 against 8x8 / 6x6 at 112
        assert cfg.data.crop_size == 112 and list(cfg.data.train_sizes) in ([112], [112, small])
        assert cfg.trainer.accelerator == "cpu" and cfg.optim.lr == 0.01


def test_demo_is_a_small_table2_over_two_seeds() -> None:
    jobs = _jobs("demo")
    arms = (
        (False, [112], [6, 3, 2, 1]),
        (True, [112], [6, 3, 2, 1]),
        (True, [112, 95], [6, 3, 2, 1]),
        (True, [112], [4, 3, 2, 1]),
    )
    assert sorted(
        (cfg.model.spp, list(cfg.data.train_sizes), list(cfg.model.pyramid), cfg.seed) for _, cfg in jobs
    ) == sorted((*arm, seed) for arm in arms for seed in (0, 1))
    for _, cfg in jobs:  # the embedded recipe of scale=embedded, ZF-5, center crop and (SPP) full image
        assert cfg.model.arch == "zf5" and cfg.data.name == "synthetic" and cfg.model.width == 0.125
        assert list(cfg.evaluate_protocols) == ["center", "full"] and cfg.task_name == "demo"
        assert cfg.eval_checkpoint == "last" and cfg.model.baseline_pool == "paper_bins"


@pytest.mark.parametrize("scale", [[], ["scale=embedded"]])
def test_every_table2_job_compares_like_for_like(scale: list[str]) -> None:
    """At full scale and under scale=embedded: the no-SPP fc6 sees 36 x C values against SPP's 50 x C (the
    paper's ratio), and the multi-size arm's small size keeps >= 0.75 of the crop's last conv map side."""
    bins = {}
    for overrides, cfg in _jobs("table2", *scale, "data.root=/data/imagenet"):
        arm = next(o.split("=")[1] for o in overrides if o.startswith("arm="))
        network = {k: v for k, v in cfg.model.items() if k not in RUNTIME_KEYS} | {"fc_dim": 8}  # fc6 input kept
        model = create_classifier(num_classes=cfg.data.num_classes, input_size=cfg.data.crop_size, **network)
        bins[cfg.model.arch, arm] = model.pre_logits.fc6.in_features // model.num_features
        net = ARCHITECTURES[cfg.model.arch]
        sides = [net.feature_size(s) for s in cfg.data.train_sizes]
        assert min(sides) / sides[0] >= 0.75 and cfg.data.train_sizes[0] == cfg.data.crop_size
        assert cfg.model.lrn_input_scale == pytest.approx(57.63)
    assert bins == {
        (arch, arm): 36 if arm == "no_spp" else 50
        for arch in ARCHITECTURES
        for arm in ("no_spp", "spp_single", "spp_multi")
    }
