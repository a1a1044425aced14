"""spp-cls: ImageNet classifiers with spatial pyramid pooling (He, Zhang, Ren, Sun 2014/2015).

Importing the package registers the eight paper networks in timm's model registry.
"""

from spp_cls import models  # noqa: F401  (registers zf5, zf5_spp, ... in timm)

__version__ = "0.1.0"
