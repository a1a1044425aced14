"""Per-process random states: a process's CUDA generator is saved and restored on its own device, whatever its index."""

from __future__ import annotations

import pytest
import torch

from spp_cls.lightning import rank_state


class FakeCuda:
    """Stands in for torch.cuda on a machine with several devices, this process on ``current``."""

    def __init__(self, devices: int, current: int) -> None:
        self.states = {d: torch.tensor([d], dtype=torch.uint8) for d in range(devices)}
        self.current = current

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: self.current)
        monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device: self.states[device].clone())
        monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device: self.states.__setitem__(device, state))
        monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [self.states[d] for d in sorted(self.states)])


def test_the_cuda_state_follows_the_process_not_the_device_index(monkeypatch: pytest.MonkeyPatch) -> None:
    first = FakeCuda(devices=4, current=3)  # e.g. rank 3 of a node with CUDA_VISIBLE_DEVICES=0,1,2,3
    first.install(monkeypatch)
    saved = rank_state.rng_state()
    assert [s.tolist() for s in saved["cuda"]] == [[3]]  # only its own device's generator

    resumed = FakeCuda(devices=1, current=0)  # resumed with CUDA_VISIBLE_DEVICES=3: its device is now index 0
    resumed.install(monkeypatch)
    rank_state.set_rng_state(saved)
    assert resumed.states[0].tolist() == [3]


def test_a_checkpoint_with_every_devices_state_restores_this_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    process = FakeCuda(devices=2, current=1)
    process.install(monkeypatch)
    state = rank_state.rng_state()
    state["cuda"] = [torch.tensor([7], dtype=torch.uint8), torch.tensor([9], dtype=torch.uint8)]  # earlier format
    rank_state.set_rng_state(state)
    assert process.states[1].tolist() == [9] and process.states[0].tolist() == [0]
