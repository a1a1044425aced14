"""Train an SPP-net classifier: ``python train.py [overrides]``, ``python train.py -m model.spp=true,false``.

``python train.py --cfg job`` prints the resolved config. See README.md for the config groups.
"""

import hydra
from omegaconf import DictConfig

from spp_cls.cli.argv import resolve_printed_config
from spp_cls.cli.train import run_training
from spp_cls.config import register_configs

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> object:
    return run_training(cfg)


if __name__ == "__main__":
    resolve_printed_config()
    main()
