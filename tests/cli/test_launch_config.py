"""Launch configuration: the submitit launcher configs (one task per device, the plugin's other defaults), and the
start-up checks of the resume checkpoint settings and of who starts the processes."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from spp_cls.config import register_configs
from spp_cls.config.validation import ConfigError, validate_train_config

CONF = Path(__file__).resolve().parents[2] / "conf"


def compose_train(*overrides: str, hydra: bool = False) -> DictConfig:
    register_configs()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=hydra)


def launcher(*overrides: str) -> dict:
    cfg = compose_train(*overrides, hydra=True)
    HydraConfig.instance().set_config(cfg)  # the launcher's folder interpolates ${hydra:runtime.cwd}
    try:
        return OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    finally:
        HydraConfig.instance().cfg = None


def test_slurm_launcher_runs_one_task_per_device_and_requeues() -> None:
    slurm = launcher("hydra/launcher=submitit_slurm", "trainer=gpu", "trainer.devices=4", "trainer.num_nodes=2",
                     "data.num_workers=8", "hydra.launcher.partition=gpu")
    assert slurm["_target_"].endswith("SlurmLauncher")
    assert (slurm["tasks_per_node"], slurm["gpus_per_node"], slurm["nodes"], slurm["cpus_per_task"]) == (4, 4, 2, 9)
    assert slurm["partition"] == "gpu" and slurm["max_num_timeout"] > 0 and slurm["signal_delay_s"] >= 120
    assert slurm["additional_parameters"]["requeue"] is True
    assert slurm["account"] is None and slurm["array_parallelism"] == 256  # the plugin's defaults for the rest
    cpu = launcher("hydra/launcher=submitit_slurm", "trainer=cpu", "trainer.devices=2")
    assert (cpu["tasks_per_node"], cpu["gpus_per_node"]) == (2, None)
    local = launcher("hydra/launcher=submitit_local", "trainer.devices=2", "trainer.accelerator=cpu")
    assert local["_target_"].endswith("LocalLauncher") and local["tasks_per_node"] == 2


def test_a_launcher_needs_a_device_count() -> None:
    with pytest.raises(InterpolationResolutionError, match="trainer.devices=-1: the submitit launchers start one"):
        launcher("hydra/launcher=submitit_slurm", "trainer=ddp")


@pytest.mark.parametrize("override,message", [
    ("callbacks.checkpoint.every_minutes=-1", "callbacks.checkpoint.every_minutes must be >= 0 or null; got -1"),
    ("callbacks.checkpoint.signals=[SIGUSR3]", "callbacks.checkpoint.signals: ['SIGUSR3'] are not signal names"),
])
def test_resume_checkpoint_settings_are_checked_by_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        validate_train_config(compose_train(override))
    validate_train_config(compose_train("callbacks.checkpoint.every_minutes=null"))


def test_processes_started_by_submitit_must_match_the_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "local")
    monkeypatch.setenv("SUBMITIT_LOCAL_NTASKS", "2")
    monkeypatch.setenv("SUBMITIT_LOCAL_JOB_NUM_NODES", "1")
    with pytest.raises(ConfigError, match="trainer.devices=1 but 2 processes per node were started"):
        validate_train_config(compose_train("trainer.devices=1"))
    validate_train_config(compose_train("trainer.devices=2", "trainer.strategy=ddp"))


@pytest.mark.parametrize("env, expected", [
    ({"HOME": "/home/u"}, "/home/u/.cache/spp-cls"),
    ({}, "/tmp/.cache/spp-cls"),  # no HOME (cron, env -i, some batch systems)
    ({"XDG_CACHE_HOME": "/scratch/cache"}, "/scratch/cache/spp-cls"),
    ({"SPP_CLS_CACHE": "/data/cache", "HOME": "/home/u"}, "/data/cache"),
])
def test_the_cache_folder_composes_with_or_without_home(env: dict, expected: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HOME", "XDG_CACHE_HOME", "SPP_CLS_CACHE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    cfg = compose_train(hydra=True)
    HydraConfig.instance().set_config(cfg)  # paths.root_dir interpolates ${hydra:runtime.cwd}
    try:
        paths = OmegaConf.to_container(cfg.paths, resolve=True)
        assert paths["cache_dir"] == expected
        assert compose_train("experiment=smoke").data.root == f"{expected}/smoke-synthetic"
        assert compose_train("data=imagenet", "data.root=/x").data.list_cache_dir == f"{expected}/file-lists"
    finally:
        HydraConfig.instance().cfg = None
