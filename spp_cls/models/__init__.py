"""Pure-torch SPP-net models (no Lightning or Hydra here). Importing registers them in timm."""

from spp_cls.models.architectures import ARCHITECTURES, Architecture, get_architecture
from spp_cls.models.factory import create_classifier
from spp_cls.models.network import SppNet
from spp_cls.models.registry import MODEL_NAMES, model_name
from spp_cls.models.spp import SpatialPyramidPool, check_pyramid

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "MODEL_NAMES",
    "SpatialPyramidPool",
    "SppNet",
    "check_pyramid",
    "create_classifier",
    "get_architecture",
    "model_name",
]
