"""Evaluate a checkpoint: ``python evaluate.py ckpt_path=PATH [protocol=center] [data.root=...]``.

Model and data settings come from the checkpoint's training run unless overridden here.
"""

import hydra
from omegaconf import DictConfig

from spp_cls.cli.argv import resolve_printed_config
from spp_cls.cli.evaluate import run_evaluation
from spp_cls.config import register_configs

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> object:
    return run_evaluation(cfg)


if __name__ == "__main__":
    resolve_printed_config()
    main()
