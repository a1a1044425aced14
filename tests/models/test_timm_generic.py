"""timm's generic model assertions (forward, backward, default cfgs, TorchScript, feature extraction),
re-stated for the eight registered models. Widths are reduced where the full models would only add time."""

from __future__ import annotations

import warnings

import pytest
import timm
import torch

from spp_cls.models import MODEL_NAMES

SMALL = dict(width=0.25, fc_dim=64)


def input_size(model: torch.nn.Module) -> tuple[int, int, int]:
    return model.pretrained_cfg["input_size"]


def test_all_eight_are_registered() -> None:
    assert sorted(timm.list_models(["zf5*", "convnet5*", "overfeat*"])) == sorted(MODEL_NAMES)
    for name in MODEL_NAMES:
        assert timm.is_model(name)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward(name: str) -> None:
    model = timm.create_model(name, **SMALL).eval()
    out = model(torch.randn(2, *input_size(model)))
    assert out.shape == (2, 1000) and not torch.isnan(out).any()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_backward_reaches_every_parameter(name: str) -> None:
    model = timm.create_model(name, num_classes=42, **SMALL).train()
    size = 128 if name.endswith("_spp") else input_size(model)[-1]
    out = model(torch.randn(2, 3, size, size))
    out.mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{pname} got no gradient"
        assert p.grad.numel() == p.numel()
    assert out.shape[-1] == 42 and not torch.isnan(out).any()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_default_cfg_and_head_api(name: str) -> None:
    model = timm.create_model(name, **SMALL).eval()
    cfg = model.pretrained_cfg
    assert cfg["num_classes"] == 1000 and model.num_classes == 1000
    assert model.num_features > 0 and model.head_hidden_size == 64
    assert cfg["fixed_input_size"] is (not name.endswith("_spp"))
    x = torch.randn(1, *cfg["input_size"])
    features = model.forward_features(x)
    assert features.shape[1] == model.num_features and features.shape[-2:] == cfg["pool_size"]
    assert model.forward_head(features, pre_logits=True).shape == (1, model.head_hidden_size)
    state = model.state_dict()
    assert cfg["classifier"] + ".weight" in state and cfg["first_conv"] + ".weight" in state
    assert model.get_classifier() is model.fc8

    model.reset_classifier(0)
    assert model.num_classes == 0
    assert model(x).shape == (1, model.head_hidden_size)
    model.reset_classifier(5)
    assert model(x).shape == (1, 5)

    model.reset_classifier(0, global_pool="")  # the SPP head is an "early pool" head: all of it goes
    assert model(x).shape == features.shape
    bare = timm.create_model(name, num_classes=0, global_pool="", **SMALL).eval()
    assert bare(x).shape == (1, bare.num_features, *cfg["pool_size"])


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_torchscript(name: str) -> None:
    model = timm.create_model(name, num_classes=7, **SMALL).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(model)
    x = torch.randn(2, *input_size(model))
    out = scripted(x)
    assert out.shape == (2, 7) and not torch.isnan(out).any()
    torch.testing.assert_close(out, model(x))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_feature_extraction(name: str) -> None:
    model = timm.create_model(name, features_only=True, **SMALL).eval()
    info = model.feature_info
    size = 96
    outs = model(torch.randn(1, 3, size, size))
    assert len(outs) >= 3 and len(outs) == len(info.channels())
    for out, channels, reduction in zip(outs, info.channels(), info.reduction()):
        assert out.shape[1] == channels
        assert out.shape[-1] <= -(-size // reduction) + 1
        assert not torch.isnan(out).any()


def test_pretrained_weights_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="no pretrained weights"):
        timm.create_model("zf5_spp", pretrained=True)


def test_head_kwargs_belong_to_the_right_variant() -> None:
    with pytest.raises(ValueError, match="pyramid applies to zf5_spp"):
        timm.create_model("zf5", pyramid=[4, 2, 1])
    with pytest.raises(ValueError, match="any size"):
        timm.create_model("zf5_spp", img_size=180)
    model = timm.create_model("zf5_spp", pyramid=[4, 3, 2, 1], num_classes=3, fc_dim=16)
    assert model.pre_logits.fc6.in_features == 256 * 30
