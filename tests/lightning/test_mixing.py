"""MixUp/CutMix of the device batch: a function of (seed, epoch, batch, rank), no trace in torch's global
generator, soft targets that sum to 1, and the dominant label that the training errors count against."""

from __future__ import annotations

import pytest
import torch

from spp_cls.lightning.mixing import BatchMixer, build_mixer, dominant_label


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(8, 3, 16, 16, generator=generator), torch.arange(8) % 5


def test_the_mix_is_a_function_of_the_batchs_place_and_leaves_the_global_generator_alone() -> None:
    mixer = BatchMixer(5, mixup_alpha=0.4, cutmix_alpha=1.0)
    images, target = batch()
    torch.manual_seed(7)
    first = mixer(images.clone(), target, seed=1, epoch=2, batch=3)
    after = torch.rand(4)
    torch.manual_seed(7)
    assert torch.equal(after, torch.rand(4))  # the global stream is where it would be without mixing
    again = mixer(images.clone(), target, seed=1, epoch=2, batch=3)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    others = [mixer(images.clone(), target, 1, 2, 4), mixer(images.clone(), target, 1, 2, 3, rank=1)]
    assert all(not torch.equal(first[1], other[1]) for other in others)


def test_mixup_blends_each_image_with_its_neighbour_by_the_target_weights() -> None:
    images, target = batch()
    mixed, soft = BatchMixer(5, mixup_alpha=0.4, cutmix_alpha=0.0)(images.clone(), target, 0, 0, 0)
    assert soft.shape == (8, 5) and torch.allclose(soft.sum(1), torch.ones(8))
    lam = float(soft[0, target[0]])  # image 0 and image 7 (its neighbour) have different labels
    assert torch.allclose(mixed, lam * images + (1 - lam) * images.roll(1, 0), atol=1e-6)
    expected = torch.where(torch.tensor(lam >= 0.5), target, target.roll(1))
    assert torch.equal(dominant_label(soft), expected)


def test_cutmix_pastes_a_box_and_both_alphas_alternate() -> None:
    images, target = batch()
    mixed, soft = BatchMixer(5, mixup_alpha=0.0, cutmix_alpha=1.0)(images.clone(), target, 0, 0, 0)
    from_self = (mixed == images).all(1).float().mean()  # share of pixels kept: the target weight of the own label
    assert float(soft[0, target[0]]) == pytest.approx(float(from_self), abs=1e-6)
    assert ((mixed == images) | (mixed == images.roll(1, 0))).all()
    both = BatchMixer(5, mixup_alpha=0.4, cutmix_alpha=1.0)
    kinds = set()
    for step in range(12):
        out, _ = both(images.clone(), target, 0, 0, step)
        kinds.add(bool(((out == images) | (out == images.roll(1, 0))).all()))  # True: a CutMix batch
    assert kinds == {True, False}


def test_the_paper_recipe_has_no_mixer() -> None:
    assert build_mixer(5, {"mixup_alpha": 0.0, "cutmix_alpha": 0.0}) is None
    assert build_mixer(5, {}) is None
    assert isinstance(build_mixer(5, {"mixup_alpha": 0.2}), BatchMixer)
    with pytest.raises(ValueError):
        BatchMixer(5, 0.0, 0.0)
