"""Config checks at start-up: typos and wrong types at composition, impossible values by key name."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig
from omegaconf.errors import ConfigKeyError, ValidationError

from spp_cls.config import register_configs
from spp_cls.config.validation import ConfigError, validate_train_config

CONF = Path(__file__).resolve().parents[2] / "conf"


def compose_train(*overrides: str) -> DictConfig:
    register_configs()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def test_default_and_every_group_option_compose_and_validate(tmp_path: Path) -> None:
    validate_train_config(compose_train())
    for override in (
        "model=convnet5",
        "model=overfeat5",
        "model=overfeat7",
        "trainer=gpu",
        "trainer=ddp",
        "experiment=demo",
        "experiment=smoke",
        "debug=fdr",
        "debug=limit",
        "debug=overfit",
        "logger=csv",
        "logger=none",
        "callbacks=none",
    ):
        validate_train_config(compose_train(override))
    for split in ("train/a", "val/a"):
        (tmp_path / split).mkdir(parents=True)
    validate_train_config(compose_train("data=imagenet", f"data.root={tmp_path}", "data.num_classes=1"))


@pytest.mark.parametrize("override", ["data.batch_sise=3", "optim.lrate=0.1"])
def test_misspelled_keys_fail_at_composition(override: str) -> None:
    with pytest.raises((ConfigCompositionException, ConfigKeyError)) as info:
        compose_train(override)
    assert override.split("=")[0].split(".")[-1] in str(info.value) + str(info.value.__cause__)


@pytest.mark.parametrize("override,key", [("+model.widht=0.5", "model.widht"), ("+sed=1", "sed")])
def test_keys_added_with_plus_are_rejected_by_the_schema(override: str, key: str) -> None:
    cfg = compose_train(override)  # Hydra lets '+' add keys even to structured configs
    with pytest.raises(ConfigError, match=f"{key}: Key '{key.split('.')[-1]}' not in"):
        validate_train_config(cfg)


def test_wrong_types_fail_at_composition() -> None:
    with pytest.raises((ConfigCompositionException, ValidationError)) as info:
        compose_train("data.batch_size=many")
    assert "batch_size" in str(info.value) + str(info.value.__cause__)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["model.pyramid=[]"], "model.pyramid"),
        (["model.pyramid=[6,0]"], "model.pyramid"),
        (["data.batch_size=0"], "data.batch_size must be >= 1"),
        (["data.crop_size=30", "data.resize_size=40"], "data.crop_size=30 is too small for model.arch=zf5"),
        (
            ["model=overfeat7", "model.spp=false", "data.crop_size=40", "model.baseline_pool=paper_window"],
            "too small for the last pooling",
        ),
        (
            ["model.spp=false", "data.crop_size=96", "data.resize_size=112"],
            "data.crop_size=96 leaves a 5x5 conv map for model.arch=zf5 without SPP: too small for the paper's 6x6",
        ),
        (["model.baseline_pool=global", "model.spp=false"], "model.baseline_pool='global' is not one of"),
        (["model.lrn_input_scale=0"], "model.lrn_input_scale must be > 0"),
        (["eval_checkpoint=best_val"], "eval_checkpoint='best_val' is not one of"),
        (["data.resize_size=100"], "data.resize_size=100 must be >= data.crop_size=112"),
        (["model.arch=vgg16"], "model.arch='vgg16'"),
        (["data=imagenet"], "data.root is required for data=imagenet"),
        (["data=imagenet", "data.root=/no/such/folder"], "data.root=/no/such/folder does not exist"),
        (["trainer.check_val_every_n_epoch=2"], "optim.scheduler=plateau"),
        (["optim.scheduler=step", "optim.step_milestones=[5,3]"], "optim.step_milestones"),
        (["model.dropout=1.5"], "model.dropout"),
        (["ckpt_path=/no/such.ckpt"], "ckpt_path=/no/such.ckpt does not exist"),
        (["optim.implementation=apex"], "optim.implementation='apex' is not one of"),
        (["model.compile_mode=fastest"], "model.compile_mode='fastest' is not one of"),
        (["model.compile=true", "model.compile_backend=tvm2"], "model.compile_backend='tvm2' is not one of"),
        (["data.num_workers=many"], "data.num_workers must be a number >= 0 or auto; got 'many'"),
        (["data.num_workers=-1"], "data.num_workers must be a number >= 0 or auto"),
        # protocol.* at start-up, not after the last epoch of training
        (
            ["protocol.multiview.layout=tenn"],
            "protocol.multiview.layout must be one of ['eighteen', 'ten']; got 'tenn'",
        ),
        (["protocol.multiview.mapping=box"], "protocol.multiview.mapping must be one of ['paper', 'crop']"),
        (["protocol.multiview.chunk_views=0"], "protocol.multiview.chunk_views must be >= 1; got 0"),
        (["protocol.multiview.chunk_pixels=-5"], "protocol.multiview.chunk_pixels must be >= 1"),
        (["protocol.multiview.scales=[100,200]"], "protocol.multiview.scales [100, 200] must all be >= the window 112"),
        (["protocol.multiview.window=0"], "protocol.multiview.window must be >= 1"),
    ],
)
def test_impossible_values_are_named(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_train_config(compose_train(*overrides))
    assert message in str(info.value)


def test_all_problems_are_reported_together() -> None:
    with pytest.raises(ConfigError) as info:
        validate_train_config(compose_train("data.batch_size=-1", "model.width=0", "optim.lr=0"))
    text = str(info.value)
    assert "data.batch_size" in text and "model.width" in text and "optim.lr" in text


def test_fewer_validation_shards_than_readers_pass_the_start_up_check(tiny_data: Path, tmp_path: Path) -> None:
    from spp_cls.data.make_shards import ShardConfig, convert

    convert(ShardConfig(source=str(tiny_data), shard_size=8), tmp_path / "wds")  # 8 train shards, 4 val shards
    ddp = (
        "data=imagenet_wds",
        f"data.root={tmp_path / 'wds'}",
        "data.num_classes=4",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "trainer.accelerator=cpu",
    )
    validate_train_config(compose_train(*ddp, "data.num_workers=3"))  # 6 readers: val idles 2, training has 8
    with pytest.raises(ConfigError, match=r"train split has 8 shards but 2 processes x 5 loader workers"):
        validate_train_config(compose_train(*ddp, "data.num_workers=5"))


def test_the_paper_window_opt_out_is_allowed_and_says_what_it_compares(caplog: pytest.LogCaptureFixture) -> None:
    validate_train_config(compose_train("model.spp=false", "model.baseline_pool=paper_window"))
    assert "pools its 6x6 conv map to 2x2 bins" in caplog.text and "not the paper's baseline" in caplog.text


def test_a_multi_size_run_below_the_papers_map_ratio_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    validate_train_config(compose_train("arm=spp_multi"))
    assert "train_sizes" not in caplog.text  # the arm's own small size (95 at 112) keeps the ratio
    validate_train_config(compose_train("data.train_sizes=[112,90]"))
    assert "data.train_sizes=[112, 90]: at 90 px the zf5 conv map is 4x4 against 6x6" in caplog.text
