"""FX tracing of the eight models: torch.fx, timm's FX feature extraction and FX model tests (forward,
backward, TorchScript of the traced graph, as in timm's test suite) and torchvision's feature extractor.
Traced modules keep eager mode's input-size errors."""

from __future__ import annotations

import warnings

import pytest
import timm
import torch
from timm.models import get_notrace_functions, get_notrace_modules
from torchvision.models import feature_extraction

from spp_cls.models import MODEL_NAMES

SMALL = dict(width=0.25, fc_dim=64)
TRACER_KWARGS = dict(leaf_modules=get_notrace_modules(), autowrap_functions=get_notrace_functions())


def make(name: str, **kwargs) -> torch.nn.Module:
    return timm.create_model(name, **SMALL, **kwargs).eval()


def size_of(name: str) -> tuple[int, int]:
    """The paper's 224 for no-SPP models; an odd non-square size for SPP models."""
    return (197, 251) if name.endswith("_spp") else (224, 224)


def bad_input(name: str) -> tuple[torch.Tensor, str]:
    """An input the model refuses in eager mode, and the words of its error."""
    if name.endswith("_spp"):
        return torch.randn(1, 3, 16, 64), "too small"
    return torch.randn(1, 3, 180, 180), "built for 224x224 inputs and got 180x180"


def fx_model(model: torch.nn.Module, train: bool = False) -> torch.nn.Module:
    """timm's test-suite FX model: the graph up to its last node(s), with timm's tracer settings."""
    train_nodes, eval_nodes = feature_extraction.get_graph_node_names(model, tracer_kwargs=TRACER_KWARGS)
    return feature_extraction.create_feature_extractor(
        model, train_return_nodes=[train_nodes[-1]], eval_return_nodes=[eval_nodes[-1]], tracer_kwargs=TRACER_KWARGS
    ).train(train)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_symbolic_trace_matches_eager_and_keeps_the_size_errors(name: str) -> None:
    model = make(name, num_classes=7)
    traced = torch.fx.symbolic_trace(model)
    x = torch.randn(2, 3, *size_of(name))
    assert torch.equal(traced(x), model(x))
    bad, words = bad_input(name)
    with pytest.raises(ValueError, match=words):
        traced(bad)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_timm_fx_feature_extraction(name: str) -> None:
    torch.manual_seed(0)
    model = timm.create_model(name, features_only=True, feature_cls="fx", **SMALL).eval()
    torch.manual_seed(0)
    eager = timm.create_model(name, features_only=True, **SMALL).eval()  # the same weights
    x = torch.randn(1, 3, *size_of(name))
    outs, expected = model(x), eager(x)
    assert len(outs) == len(expected) == len(model.feature_info.channels())
    for out, ref, channels in zip(outs, expected, model.feature_info.channels()):
        assert out.shape[1] == channels
        assert torch.equal(out, ref)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_timm_fx_forward_and_backward(name: str) -> None:
    """timm's test_model_forward_fx and test_model_backward_fx."""
    model = make(name, num_classes=42)
    x = torch.randn(2, 3, *size_of(name))
    with torch.inference_mode():
        (out,) = fx_model(model)(x).values()
        assert torch.equal(out, model(x))

    traced = fx_model(model, train=True)
    (out,) = traced(x).values()
    out.mean().backward()
    assert out.shape[-1] == 42
    assert all(p.grad is not None for p in traced.parameters())


@pytest.mark.parametrize("name", ["zf5_spp", "overfeat7"])
def test_timm_fx_torchscript(name: str) -> None:
    """timm's test_model_forward_fx_torchscript: the traced graph scripts and still checks its input."""
    model = make(name, num_classes=42)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(fx_model(model))
    x = torch.randn(2, 3, *size_of(name))
    with torch.inference_mode():
        (out,) = scripted(x).values()
        assert torch.equal(out, model(x))
        bad, words = bad_input(name)
        with pytest.raises(torch.jit.Error, match=words):
            scripted(bad)


@pytest.mark.parametrize("name", ["zf5_spp", "overfeat7"])
def test_torchvision_feature_extractor(name: str) -> None:
    model = make(name)
    nodes = {f"features.conv{len(model.features)}.relu": "last_conv", "pre_logits.act7": "fc7"}
    extractor = feature_extraction.create_feature_extractor(model, nodes)
    x = torch.randn(2, 3, *size_of(name))
    features = extractor(x)
    assert torch.equal(features["last_conv"], model.forward_features(x))
    assert torch.equal(features["fc7"], model.forward_head(model.forward_features(x), pre_logits=True))


def test_pruned_graphs_keep_the_input_check() -> None:
    """A graph cut after conv1 no longer needs the rest of the model, but still checks the input."""
    extractor = feature_extraction.create_feature_extractor(make("zf5_spp"), ["features.conv1.conv"])
    assert "check_input_size" in extractor.code
    with pytest.raises(ValueError, match="too small"):
        extractor(torch.randn(1, 3, 30, 30))
