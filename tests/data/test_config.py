"""``data.*`` checks that live beside the settings: where JPEGs are decoded."""

from __future__ import annotations

import pytest

from spp_cls.data.config import DataConfig


def test_decode_device_must_be_a_known_device() -> None:
    with pytest.raises(ValueError, match=r"decode_device='gpu' is not one of \['cpu', 'cuda'\]"):
        DataConfig(name="t", root="/t", num_classes=2, decode_device="gpu")
