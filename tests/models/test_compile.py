"""torch.compile with dynamic sizes: one compilation serves every input size (no recompiles).

The first input is non-square: with a square one, torch's duck sizing gives height and width one symbol
and the first non-square input compiles a second graph (square multi-size training never sees one).
"""

from __future__ import annotations

import pytest
import timm
import torch
from torch import nn
from torch._dynamo.testing import CompileCounterWithBackend

from spp_cls.models import SpatialPyramidPool
from spp_cls.models.pooling import CeilMaxPool2d

SIZES = [(197, 311), (224, 224), (180, 240), (96, 128)]


def compile_counts(model: nn.Module, backend: str, sizes: list[tuple[int, int]], mark: bool) -> list[int]:
    """Graphs compiled after each input size; ``mark``: torch._dynamo.mark_dynamic instead of dynamic=True."""
    torch.compiler.reset()
    counter = CompileCounterWithBackend(backend)
    compiled = torch.compile(model, backend=counter, dynamic=None if mark else True)
    counts = []
    for height, width in sizes:
        x = torch.randn(2, 3, height, width)
        if mark:
            torch._dynamo.mark_dynamic(x, 2)
            torch._dynamo.mark_dynamic(x, 3)
        with torch.no_grad():
            torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-6)
        counts.append(counter.frame_count)
    return counts


def inductor_unavailable() -> str:
    """Why inductor cannot compile for this CPU ('' if it can)."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        get_cpp_compiler()
    except Exception as err:  # no C++ compiler, or a broken toolchain
        return f"inductor cannot compile C++ here: {err}"
    return ""


@pytest.mark.parametrize("mark", [False, True], ids=["dynamic", "mark_dynamic"])
def test_spp_model_compiles_once_for_every_size(mark: bool) -> None:
    """The whole graph (size check, ZF-5's ceil-mode pools, SPP) traced by dynamo and AOT autograd."""
    model = timm.create_model("zf5_spp", num_classes=3, width=0.125, fc_dim=16).eval()
    counts = compile_counts(model, "aot_eager", SIZES, mark)
    assert counts == [counts[0]] * len(SIZES)


@pytest.mark.slow  # about 50 s with a cold inductor cache on 2 cores (C++ compilation), 13 s warm
@pytest.mark.skipif(bool(inductor_unavailable()), reason=inductor_unavailable())
def test_inductor_compiles_the_size_dependent_layers_once() -> None:
    """Inductor's own lowerings of adaptive and ceil-mode max pooling specialise on the map size (one
    compilation per size); the layers' graph-capture forms (masked pyramid, padded pooling) do not. The
    rest of a model is convolutions (extern kernels), ReLU, LRN and linear layers, none size-specialised."""
    model = nn.Sequential(CeilMaxPool2d(3, 2), SpatialPyramidPool()).eval()
    counts = compile_counts(model, "inductor", SIZES[:3], mark=False)
    assert counts == [counts[0]] * 3


@pytest.mark.slow  # inductor's C++ compilation of the forward and backward kernels: about 30 s cold on 2 cores
@pytest.mark.skipif(bool(inductor_unavailable()), reason=inductor_unavailable())
def test_inductor_trains_the_size_dependent_layers_without_recompiling() -> None:
    """Training compiles the backward too: its gradients are eager's, and one compilation serves every size."""
    model = nn.Sequential(CeilMaxPool2d(3, 2), SpatialPyramidPool())
    torch.compiler.reset()
    counter = CompileCounterWithBackend("inductor")
    compiled = torch.compile(model, backend=counter, dynamic=True)
    counts = []
    for height, width in SIZES[:3]:
        x = torch.randn(2, 3, height, width, requires_grad=True)
        compiled_grad, eager_grad = (torch.autograd.grad(m(x).square().sum(), x)[0] for m in (compiled, model))
        torch.testing.assert_close(compiled_grad, eager_grad)
        counts.append(counter.frame_count)
    assert counts == [counts[0]] * 3
