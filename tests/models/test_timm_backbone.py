"""Timm backbones with an SPP or their own global-pooling head: any input size, every parameter trained, the
global-pooling head is the backbone's own, model.width scales the channels, the map's geometry (stride, the
first cell's centre, sizes) and a local weights file."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch

from spp_cls.models import create_classifier
from spp_cls.models.timm_backbone import TimmBackboneNet, backbone_errors
from spp_cls.models.timm_width import width_kwargs

# small enough for a test: 1/8 of resnet18's channels, 1/4 of convnext_atto's
BACKBONES = {"resnet18": 0.125, "convnext_atto": 0.25}


def backbone(name: str = "resnet18", spp: bool = True, **kwargs: object) -> TimmBackboneNet:
    torch.manual_seed(0)
    settings: dict = dict(fc_dim=0, dropout=0.0) | kwargs
    model = create_classifier(
        arch=name,
        spp=spp,
        num_classes=5,
        input_size=64,
        pyramid=(3, 2, 1),
        width=BACKBONES.get(name, 1.0),
        backbone=name,
        **settings,
    )
    assert isinstance(model, TimmBackboneNet)
    return model


@pytest.mark.parametrize("name", sorted(BACKBONES))
@pytest.mark.parametrize("spp", [True, False])
def test_both_heads_take_any_size_and_train_every_parameter(name: str, spp: bool) -> None:
    model = backbone(name, spp, fc_dim=16)
    for h, w in ((64, 64), (70, 97), (97, 64)):
        model.zero_grad()
        out = model(torch.randn(2, 3, h, w))
        assert out.shape == (2, 5)
        out.logsumexp(-1).sum().backward()
        assert [n for n, p in model.named_parameters() if p.grad is None] == []


def test_global_pooling_head_is_the_backbones_own() -> None:
    """ResNet's own head: average over the map -> fc8; the map is the one timm's forward_features gives."""
    model = backbone(spp=False).eval()
    x = torch.randn(2, 3, 80, 64)
    maps = model.features(x)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.fc8(maps.mean(dim=(2, 3))))
        torch.testing.assert_close(maps, model.features.model.forward_features(x))
    assert not any(k.startswith("pool.") for k in model.state_dict())  # ResNet's global pool has no parameters
    convnext = backbone("convnext_atto", spp=False)
    assert "pool.norm.weight" in convnext.state_dict()  # ConvNeXt's head norm stays, saved once
    assert sum(k.endswith("norm.weight") and "head" in k for k in convnext.state_dict()) == 0


# timm families whose head runs layers after the pool (a 1x1 conv widening the pooled vector), as direct children
POST_POOL_HEADS = ("mobilenetv3_small_050", "ghostnet_050")


@pytest.mark.parametrize("name", POST_POOL_HEADS)
def test_heads_with_layers_after_the_pool(name: str) -> None:
    """Global pooling is the backbone's whole head up to its pre-logits (timm's forward_head), conv_head
    included; with SPP those layers are gone, so that no parameter is left without a gradient (DDP refuses
    unused parameters). Both heads train every parameter at any size."""
    torch.manual_seed(0)
    own = TimmBackboneNet(name, num_classes=5, spp=False).eval()
    torch.manual_seed(0)
    reference = timm.create_model(name, num_classes=0).eval()
    x = torch.randn(2, 3, 64, 72)
    with torch.no_grad():
        expected = reference.forward_head(reference.forward_features(x), pre_logits=True)
        torch.testing.assert_close(own.pool(own.features(x)).flatten(1), expected, rtol=0, atol=0)
    assert own.fc8.in_features == reference.head_hidden_size != reference.num_features
    assert any(k.startswith("pool.conv_head.") for k in own.state_dict())
    assert not any(".conv_head." in k for k in TimmBackboneNet(name, num_classes=5, spp=True).state_dict())
    for spp in (False, True):
        model = TimmBackboneNet(name, num_classes=5, spp=spp, pyramid=(2, 1))
        for h, w in ((64, 64), (80, 96)):
            model.zero_grad()
            model(torch.randn(2, 3, h, w)).logsumexp(-1).sum().backward()
            assert [n for n, p in model.named_parameters() if p.grad is None] == []


def test_spp_head_pools_the_same_map_into_the_pyramid() -> None:
    model = backbone().eval()
    maps = model.features(torch.randn(1, 3, 64, 64))
    assert model.pool(maps).shape == (1, maps.shape[1] * (9 + 4 + 1))
    assert model.fc8.in_features == maps.shape[1] * 14  # fc_dim=0: the SPP vector straight to fc8


def test_width_scales_the_channels_of_the_variant() -> None:
    assert width_kwargs("resnet10t", 0.5, {}) == {"channels": (32, 64, 128, 256), "stem_width": 16}
    assert width_kwargs("convnext_atto", 0.5, {}) == {"dims": (20, 40, 80, 160)}
    assert backbone().num_features == 64 and backbone("convnext_atto").num_features == 80
    with pytest.raises(ValueError, match="model.width=0.5: timm takes no channel widths for regnetx_002"):
        width_kwargs("regnetx_002", 0.5, {})


@pytest.mark.parametrize(
    "name,center", [("resnet18", 0.0), ("convnext_atto", 15.5), pytest.param("mobilenetv3_small_050", 0.0)]
)
def test_geometry_stride_centre_and_sizes(name: str, center: float) -> None:
    """Stride 32 from feature_info. The first cell's centre, measured: 0 for ResNet (every window padded by
    floor(k/2)); ConvNeXt's 4x4 stride-4 stem and 2x2 stride-2 downsamplings: 1.5 + 0.5 * (4 + 8 + 16) = 15.5;
    0 for MobileNetV3 (padded as ResNet), whose squeeze-excitation gates on the main path pool the whole map:
    without the measurement's cut of global context no width held the support."""
    model = backbone(name).eval()
    geometry = model.arch
    assert (geometry.total_stride, geometry.first_center) == (32, center)
    for side in (32, 64, 97, 130):
        assert geometry.feature_size(side) == model.features(torch.zeros(1, 3, side, side)).shape[-1]
    minimum = geometry.min_input_size(2)
    assert geometry.feature_size(minimum) == 2 and geometry.feature_size(minimum - 1) == 1


def test_a_local_weights_file_is_loaded(tmp_path: Path) -> None:
    torch.manual_seed(1)
    source = timm.create_model("resnet10t", num_classes=7)
    torch.save(source.state_dict(), tmp_path / "weights.pth")
    model = create_classifier(
        arch="resnet10t",
        spp=True,
        num_classes=5,
        input_size=64,
        backbone="resnet10t",
        fc_dim=0,
        pretrained=True,
        pretrained_file=str(tmp_path / "weights.pth"),
    )
    state = model.state_dict()
    for key, value in source.state_dict().items():
        if not key.startswith("fc."):
            assert torch.equal(state[f"features.model.{key}"], value), key


def test_start_up_checks_name_the_key(tmp_path: Path) -> None:
    assert backbone_errors("resnet18", sizes=(112,)) == []
    assert "is not a timm model name" in backbone_errors("resnet_18")[0]
    errors = backbone_errors("resnet18", pretrained_file=str(tmp_path / "none.pth"))
    assert any("set it true" in e for e in errors) and any("is not a file" in e for e in errors)
    assert "model.width=0.5" in backbone_errors("regnetx_002", width=0.5)[0]
    assert "input sides [16] are too small" in backbone_errors("convnext_atto", sizes=(64, 16))[0]


@pytest.mark.parametrize(
    "name,message",
    [
        ("vit_tiny_patch16_224", "does not take inputs of any size: Input height ("),
        ("inception_v3", None),  # needs 75 px, but any size above: accepted
        ("mambaout_femto", "not an (N, C, H, W) map (channels-last or token outputs are not supported)"),
    ],
)
def test_backbones_without_a_map_of_any_size_are_refused_in_one_line(name: str, message: str | None) -> None:
    """A fixed-size transformer raised its own assertion from the start-up check; a channels-last map passed it
    and failed at the first forward with a shape mismatch. A convolutional one with a large minimum input
    (inception_v3) is not mistaken for a fixed-size one."""
    errors = backbone_errors(name, sizes=(112,))
    if message is None:
        assert errors == []
        return
    (error,) = errors
    assert error.startswith(f"model.backbone={name}") and message in error
