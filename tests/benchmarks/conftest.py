"""The benchmarks set torch's thread count for their own timing (1, or every core): each test here gives the
rest of the suite back the count it found."""

from __future__ import annotations

from typing import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _restore_torch_threads() -> Iterator[None]:
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
