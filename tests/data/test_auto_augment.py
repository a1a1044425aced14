"""data.auto_augment: torchvision's policies on the training view, drawn from each sample's own generator."""

from __future__ import annotations

import random

import pytest
import torch

from spp_cls.data.auto_augment import auto_augment
from spp_cls.data.config import DataConfig
from spp_cls.data.transforms import TrainView

VIEW = torch.randint(0, 256, (3, 48, 48), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", ["randaugment", "trivialaugment"])
def test_a_sample_gets_the_same_policy_from_the_same_generator_and_the_global_stream_stays(name: str) -> None:
    before = torch.random.get_rng_state()
    first = auto_augment(VIEW, name, random.Random(7))
    assert torch.equal(torch.random.get_rng_state(), before)  # nothing else's random stream moved
    assert torch.equal(first, auto_augment(VIEW, name, random.Random(7)))
    assert first.dtype == torch.uint8 and first.shape == VIEW.shape
    outputs = {auto_augment(VIEW, name, random.Random(seed)).numpy().tobytes() for seed in range(8)}
    assert len(outputs) > 1  # it does augment


def test_only_the_cpu_generator_is_seeded(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.manual_seed would reseed every GPU's generator too, outside fork_rng(devices=[]): with the loader in
    the training process (num_workers=0) dropout on the GPU would then follow the last sample's seed."""
    seeded: list[int] = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", seeded.append)
    auto_augment(VIEW, "trivialaugment", random.Random(7))
    assert seeded == []


def test_none_is_the_papers_view_and_draws_nothing() -> None:
    rng = random.Random(3)
    assert auto_augment(VIEW, "none", rng) is VIEW and rng.random() == random.Random(3).random()


def test_the_training_view_applies_it_after_the_papers_draws() -> None:
    image = torch.randint(0, 256, (3, 80, 100), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    plain = TrainView(DataConfig(resize_size=73, crop_size=64))(image, 64, random.Random(5))
    augmented = TrainView(DataConfig(resize_size=73, crop_size=64, auto_augment="randaugment"))
    first, again = augmented(image, 64, random.Random(5)), augmented(image, 64, random.Random(5))
    assert torch.equal(first["image"], again["image"]) and torch.equal(first["lighting"], plain["lighting"])


def test_unknown_policies_and_gpu_decoding_are_refused_naming_the_key() -> None:
    with pytest.raises(ValueError, match=r"auto_augment='autoaugment' is not one of \['none', 'randaugment'"):
        DataConfig(auto_augment="autoaugment")
    with pytest.raises(ValueError, match="auto_augment=randaugment runs in the loader workers .* decode_device=cpu"):
        DataConfig(auto_augment="randaugment", decode_device="cuda")
