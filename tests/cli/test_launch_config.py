"""Launch configuration: the submitit launcher configs (one task per device, the plugin's other defaults; under
submitit_local each job on GPUs of its own), the start-up checks of the resume checkpoint settings and of who starts
the processes, and the cache folder with or without HOME."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from spp_cls.config import register_configs
from spp_cls.config.validation import ConfigError, validate_train_config
from spp_cls.lightning import cluster
from spp_cls.lightning.cluster import LocalGpuSets, claim_gpu_set, gpu_sets, machine_gpus

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
    slurm = launcher(
        "hydra/launcher=submitit_slurm",
        "trainer=gpu",
        "trainer.devices=4",
        "trainer.num_nodes=2",
        "data.num_workers=8",
        "hydra.launcher.partition=gpu",
    )
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


@pytest.mark.parametrize(
    "override,message",
    [
        ("callbacks.checkpoint.every_minutes=-1", "callbacks.checkpoint.every_minutes must be >= 0 or null; got -1"),
        ("callbacks.checkpoint.signals=[SIGUSR3]", "callbacks.checkpoint.signals: ['SIGUSR3'] are not signal names"),
    ],
)
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


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"HOME": "/home/u"}, "/home/u/.cache/spp-cls"),
        ({}, "/tmp/.cache/spp-cls"),  # no HOME (cron, env -i, some batch systems)
        ({"XDG_CACHE_HOME": "/scratch/cache"}, "/scratch/cache/spp-cls"),
        ({"SPP_CLS_CACHE": "/data/cache", "HOME": "/home/u"}, "/data/cache"),
    ],
)
def test_the_cache_folder_composes_with_or_without_home(
    env: dict, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
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


# ------------------------------------------------------------------ submitit_local: each job on GPUs of its own
def test_submitit_local_adds_the_gpu_set_callback_and_only_it() -> None:
    local = compose_train("hydra/launcher=submitit_local", "trainer.devices=2", "trainer.accelerator=gpu", hydra=True)
    (callback,) = local.hydra.callbacks.values()
    assert callback._target_ == "spp_cls.lightning.cluster.LocalGpuSets" and callback.poll_s > 0
    assert local.hydra.launcher.gpus_per_node == 2
    for other in ((), ("hydra/launcher=submitit_slurm", "trainer.devices=2")):
        assert not compose_train(*other, hydra=True).hydra.callbacks


def test_gpu_sets_are_disjoint_and_in_order() -> None:
    assert gpu_sets(list("01234567"), 2) == [["0", "1"], ["2", "3"], ["4", "5"], ["6", "7"]]
    assert gpu_sets(["4", "5", "6"], 2) == [["4", "5"]]  # the odd one is left out
    with pytest.raises(ValueError, match="a job needs 4 GPUs; the sweep has 2: 0,1"):
        gpu_sets(["0", "1"], 4)


def test_machine_gpus_come_from_spp_cls_gpus_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPP_CLS_GPUS", "4, 5,6,7")
    assert machine_gpus() == ["4", "5", "6", "7"]


def test_jobs_take_free_gpu_sets_and_wait_when_none_is_left(tmp_path: Path) -> None:
    """4 GPUs, 2 per job: jobs a and b get sets of their own, job c waits until a ends (its lock file closes, as at
    a process's exit; flock locks of separate opens conflict within one process too) and then gets a's set."""
    sets, locks = gpu_sets(["0", "1", "2", "3"], 2), tmp_path / "locks"
    a, a_lock = claim_gpu_set(sets, locks, poll_s=0.05)
    b, b_lock = claim_gpu_set(sets, locks, poll_s=0.05)
    assert (a, b) == (["0", "1"], ["2", "3"])
    waited, claimed = threading.Event(), []
    c = threading.Thread(target=lambda: claimed.append(claim_gpu_set(sets, locks, 0.05, waiting=waited.set)))
    c.start()
    try:
        assert waited.wait(timeout=30) and not claimed  # told that it waits, and still waiting
        os.close(a_lock)  # job a ends
        c.join(timeout=30)
        assert claimed and claimed[0][0] == ["0", "1"]
    finally:
        for fd in (b_lock, *(lock for _, lock in claimed)):
            os.close(fd)
        if c.is_alive():
            os.close(claim_gpu_set(sets, locks)[1])  # cannot happen once the assertions above passed


def test_every_process_of_a_job_gets_rank_zeros_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rank 0 claims a set and notes it for the job (submitit's job id, the run directory); the other ranks read
    the note. The variables are submitit_local's."""
    config = OmegaConf.create({"hydra": {"launcher": {"gpus_per_node": 2}, "runtime": {"output_dir": "/s/0"}}})
    for name, value in dict(
        SUBMITIT_EXECUTOR="local", SUBMITIT_LOCAL_JOB_ID="4242", SPP_CLS_GPUS="0,1,2,3", CUDA_VISIBLE_DEVICES="0,1"
    ).items():
        monkeypatch.setenv(name, value)
    busy, busy_lock = claim_gpu_set(gpu_sets(["0", "1", "2", "3"], 2), tmp_path)  # another job holds 0,1
    callback = LocalGpuSets(lock_dir=str(tmp_path), poll_s=0.05)
    try:
        for rank in ("0", "1"):
            monkeypatch.setenv("SUBMITIT_LOCAL_GLOBALID", rank)
            monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")  # what submitit gives every job
            callback.on_job_start(config, task_function=None)
            assert os.environ["CUDA_VISIBLE_DEVICES"] == "2,3", rank
        (note,) = tmp_path.glob("job-4242-*")
        assert note.read_text() == "2,3"
    finally:
        os.close(busy_lock)
        for fd in cluster._held_locks:
            os.close(fd)
        cluster._held_locks.clear()


def test_when_rank_zero_cannot_take_gpus_the_other_ranks_fail_with_its_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job asking for more GPUs than the sweep has: rank 0 fails, and the other ranks (which used to poll for
    its note forever) fail too, with rank 0's reason."""
    config = OmegaConf.create({"hydra": {"launcher": {"gpus_per_node": 4}, "runtime": {"output_dir": "/s/1"}}})
    for name, value in dict(SUBMITIT_EXECUTOR="local", SUBMITIT_LOCAL_JOB_ID="77", SPP_CLS_GPUS="0,1").items():
        monkeypatch.setenv(name, value)
    callback = LocalGpuSets(lock_dir=str(tmp_path), poll_s=0.05, start_timeout_s=5)
    monkeypatch.setenv("SUBMITIT_LOCAL_GLOBALID", "0")
    with pytest.raises(ValueError, match="a job needs 4 GPUs; the sweep has 2"):
        callback.on_job_start(config, task_function=None)
    monkeypatch.setenv("SUBMITIT_LOCAL_GLOBALID", "1")
    with pytest.raises(RuntimeError, match="rank 0 of this job could not take its GPUs: ValueError: a job needs 4"):
        callback.on_job_start(config, task_function=None)


def test_the_other_ranks_stop_waiting_for_a_dead_or_missing_rank_zero(tmp_path: Path) -> None:
    record, rank0, failure = tmp_path / "job-1", tmp_path / "rank0-1.pid", tmp_path / "rank0-1.error"
    with pytest.raises(RuntimeError, match="did not start within 0 s"):
        cluster.wait_for_rank0(record, rank0, failure, start_timeout_s=0.0, poll_s=0.01)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    rank0.write_text(dead.stdout.strip())  # a rank 0 that exited without noting the GPUs
    with pytest.raises(RuntimeError, match=f"PID {dead.stdout.strip()}\\) exited before"):
        cluster.wait_for_rank0(record, rank0, failure, start_timeout_s=60, poll_s=0.01)
    rank0.write_text(str(os.getpid()))  # alive, and its note arrives
    record.write_text("4,5")
    assert cluster.wait_for_rank0(record, rank0, failure, start_timeout_s=60, poll_s=0.01) == ["4", "5"]


def test_the_callback_leaves_cpu_jobs_and_other_launchers_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    cpu = OmegaConf.create({"hydra": {"launcher": {"gpus_per_node": None}, "runtime": {"output_dir": "x"}}})
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "local")
    LocalGpuSets(lock_dir=str(tmp_path)).on_job_start(cpu, task_function=None)
    gpu = OmegaConf.create({"hydra": {"launcher": {"gpus_per_node": 2}, "runtime": {"output_dir": "x"}}})
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    LocalGpuSets(lock_dir=str(tmp_path)).on_job_start(gpu, task_function=None)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1" and not list(tmp_path.iterdir())
