"""The full-image protocols' GPU switches, checked on a CPU: cuDNN autotuning is off while they score (and
restored after), and with ``model.compile`` they run compiled code and score as eager."""

from __future__ import annotations

from typing import Any, Callable

import pytest
import torch

from spp_cls.evaluation.protocols import build_protocol
from spp_cls.lightning import SppClassifier
from tests.evaluation.test_precision import OPTIONS, SETTINGS, normalised_batch, small_model
from tests.helpers import STEP_OPTIM as OPTIM

MODEL = dict(arch="zf5", spp=True, width=0.125, fc_dim=32, dropout=0.0)
AUTOTUNED = {
    "center": True,
    "ten_view": True,
    "full": False,
    "full_flip": False,
    "multiview": False,
    "multiview_18": False,
    "multiview_96": False,
}


class CallCounter:
    """A compile backend that runs each captured graph as it is (eager) and counts the graphs' calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, graph: torch.fx.GraphModule, example_inputs: list) -> Callable:
        def run(*args: Any) -> Any:
            self.calls += 1
            return graph.forward(*args)

        return run


@pytest.fixture
def cudnn_benchmark_on():
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    yield
    torch.backends.cudnn.benchmark = previous


@pytest.mark.parametrize("name", sorted(AUTOTUNED))
def test_cudnn_autotuning_is_off_while_whole_images_score(name: str, cudnn_benchmark_on: None) -> None:
    """Crops have one size (autotuning pays off); whole images have many, most seen once or twice."""
    model = small_model()
    seen: list[bool] = []
    model.features.register_forward_pre_hook(lambda *_: seen.append(torch.backends.cudnn.benchmark))
    with torch.no_grad():
        build_protocol(name, SETTINGS, OPTIONS).scores(model, normalised_batch(name))
    assert seen and set(seen) == {AUTOTUNED[name]}
    assert torch.backends.cudnn.benchmark


def test_cudnn_autotuning_is_restored_when_scoring_fails(cudnn_benchmark_on: None) -> None:
    model = small_model()

    def fail(*_: object) -> None:
        raise RuntimeError("out of memory")

    model.features.register_forward_pre_hook(fail)
    with pytest.raises(RuntimeError, match="out of memory"), torch.no_grad():
        build_protocol("full", SETTINGS, OPTIONS).scores(model, normalised_batch("full"))
    assert torch.backends.cudnn.benchmark


@pytest.mark.slow  # dynamo traces the conv layers, the SPP layer and fc6-fc8 with symbolic sizes: seconds
def test_compiled_module_scores_whole_images_with_compiled_code() -> None:
    """``model.compile=true``: the full-image protocols call the network's parts (conv layers, SPP, fc6-fc8),
    which ``configure_model`` compiles in place; their scores are eager's, and the checkpoint keys unchanged."""
    torch.compiler.reset()
    counter = CallCounter()
    modules = {}
    for compiled in (False, True):
        torch.manual_seed(0)
        runtime = dict(compile=True, compile_backend=counter) if compiled else {}
        modules[compiled] = SppClassifier(
            model={**MODEL, **runtime}, optim=OPTIM, num_classes=5, input_size=64, lr=0.05
        ).eval()
        modules[compiled].configure_model()
    assert set(modules[True].state_dict()) == set(modules[False].state_dict())
    for name in ("full_flip", "multiview"):
        protocol, images = build_protocol(name, SETTINGS, OPTIONS), normalised_batch(name)
        before = counter.calls
        with torch.no_grad():
            expected, _ = protocol.scores(modules[False].model, images)
            scores, _ = protocol.scores(modules[True].model, images)
        assert counter.calls > before  # the protocol ran compiled graphs
        torch.testing.assert_close(scores, expected, rtol=1e-5, atol=1e-6)
