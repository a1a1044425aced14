"""Human-readable names for ImageNet-1k wnids: the wnid's position in the standard index (``imagenet_wnids``),
then torchvision's category name at that position.

torchvision's list (the ``categories`` of its ImageNet weights' metadata, a public and maintained table that
needs no download) is in the same sorted-wnid order that class folders give; it has no wnids, hence our table.
"""

from __future__ import annotations

from functools import lru_cache

from spp_cls.predict.imagenet_wnids import WNIDS


@lru_cache(maxsize=1)
def imagenet_names() -> dict[str, str]:
    """wnid -> name for the 1,000 ILSVRC-2012 classes (e.g. ``n01440764`` -> ``tench``)."""
    from torchvision.models import ResNet50_Weights

    categories = ResNet50_Weights.IMAGENET1K_V1.meta["categories"]
    assert len(categories) == len(WNIDS)
    return dict(zip(WNIDS, categories))


def readable_names(classes: list[str]) -> list[str]:
    """The class index with every ImageNet-1k wnid replaced by its name (other labels are kept as they are)."""
    names = imagenet_names()
    return [names.get(label, label) for label in classes]
