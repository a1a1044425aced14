"""CeilMaxPool2d: eager and graph-capture forms both equal PyTorch's ceil-mode max pooling."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from spp_cls.models.pooling import CeilMaxPool2d


@pytest.mark.parametrize("capturing", [False, True], ids=["eager", "graph_capture"])
@pytest.mark.parametrize("kernel,stride", [(3, 2), (2, 2), (3, 3), (5, 2)])
def test_same_windows_as_ceil_mode(kernel: int, stride: int, capturing: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: capturing)
    pool = CeilMaxPool2d(kernel, stride)
    for height in range(kernel, kernel + 12):
        x = torch.randn(2, 3, height, 2 * height + 1)
        assert torch.equal(pool(x), F.max_pool2d(x, kernel, stride, ceil_mode=True)), height


def test_kernel_smaller_than_stride_is_refused() -> None:
    with pytest.raises(ValueError, match="kernel >= stride"):
        CeilMaxPool2d(2, 3)
