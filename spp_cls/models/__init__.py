"""Pure-torch SPP-net models (no Lightning or Hydra here). Importing registers the paper's networks in timm;
``TimmBackboneNet`` puts an SPP or global-pooling head on a timm backbone."""

from typing import Union

from spp_cls.models.architectures import ARCHITECTURES, Architecture, get_architecture
from spp_cls.models.factory import create_classifier
from spp_cls.models.network import SppNet
from spp_cls.models.registry import MODEL_NAMES, model_name
from spp_cls.models.spp import SpatialPyramidPool, check_pyramid
from spp_cls.models.timm_backbone import TimmBackboneNet

#: what ``create_classifier`` builds: a paper network, or a timm backbone with an SPP or global-pooling head
Classifier = Union[SppNet, TimmBackboneNet]

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "Classifier",
    "MODEL_NAMES",
    "SpatialPyramidPool",
    "SppNet",
    "TimmBackboneNet",
    "check_pyramid",
    "create_classifier",
    "get_architecture",
    "model_name",
]
