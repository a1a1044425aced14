"""``data.*`` checks that live beside the settings: where JPEGs are decoded."""

from __future__ import annotations

import pytest
import torch

from spp_cls.data.config import DataConfig, source_errors


def test_decode_device_must_be_a_known_device() -> None:
    with pytest.raises(ValueError, match=r"decode_device='gpu' is not one of \['cpu', 'cuda'\]"):
        DataConfig(name="t", root="/t", num_classes=2, decode_device="gpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_decode_device_cuda_needs_a_cuda_device_and_says_so_at_start_up() -> None:
    config = DataConfig(name="t", root="/nonexistent", num_classes=2, decode_device="cuda")
    errors = source_errors(config, prefix="data.")
    assert any(e.startswith("data.decode_device=cuda needs a CUDA device") for e in errors)
