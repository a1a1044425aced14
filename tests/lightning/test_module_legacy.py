"""A checkpoint's saved model settings rebuild the network it was trained as, including checkpoints written
before ``lrn_input_scale`` and ``baseline_pool`` existed (their networks had Caffe's alpha on normalised input
and Table 1's pool window at every size)."""

from __future__ import annotations

import pytest

from spp_cls.lightning.module import SppClassifier
from spp_cls.models.lrn import IMAGENET_CAFFE_SCALE

OLD_MODEL = dict(
    arch="zf5",
    spp=False,
    pyramid=[6, 3, 2, 1],
    width=0.125,
    fc_dim=16,
    dropout=0.0,
    lrn="within_channel",
    init="kaiming",
)
OPTIM = dict(lr=0.01, momentum=0.9, weight_decay=5e-4, scheduler="step", lr_factor=0.1, step_milestones=[3])


def build(model: dict) -> SppClassifier:
    return SppClassifier(model=model, optim=OPTIM, num_classes=12, input_size=112, lr=0.01)


def test_settings_without_the_new_keys_rebuild_the_old_network() -> None:
    net = build(OLD_MODEL).model
    assert net.pre_logits.fc6.in_features == 4 * 32  # Table 1's 3x3/2 window on a 6x6 conv5
    assert net.features.conv1.lrn.alpha == 5e-5


def test_settings_with_them_build_the_papers_comparison() -> None:
    net = build({**OLD_MODEL, "lrn_input_scale": IMAGENET_CAFFE_SCALE, "baseline_pool": "paper_bins"}).model
    assert net.pre_logits.fc6.in_features == 36 * 32
    assert net.features.conv1.lrn.alpha == pytest.approx(5e-5 * IMAGENET_CAFFE_SCALE**2)
