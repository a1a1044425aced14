"""ImageNet-1k names: the shipped wnid table is the 1,000 sorted ILSVRC-2012 wnids, and a wnid gets torchvision's
category name at its position (a subset of wnids and other labels keep working)."""

from __future__ import annotations

from spp_cls.predict.imagenet import imagenet_names, readable_names
from spp_cls.predict.imagenet_wnids import WNIDS


def test_the_table_is_ilsvrc_2012s_sorted_wnids() -> None:
    assert len(WNIDS) == len(set(WNIDS)) == 1000 and list(WNIDS) == sorted(WNIDS)
    assert all(len(w) == 9 and w[0] == "n" and w[1:].isdigit() for w in WNIDS)


def test_wnids_get_names_at_their_position() -> None:
    names = imagenet_names()
    assert (names["n01440764"], names["n01443537"], names["n15075141"]) == ("tench", "goldfish", "toilet tissue")
    assert names["n02123045"] == "tabby"  # class 281, the middle of the table
    assert readable_names(["n02123045", "00_disk", "n99999999"]) == ["tabby", "00_disk", "n99999999"]
