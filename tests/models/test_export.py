"""torch.export and ONNX (dynamo exporter, run by ONNX Runtime) of the models: SPP models with a dynamic
height and width, no-SPP models at their one size; both with a dynamic batch.

Tolerances: an exported program runs the same kernels as eager (rtol 1e-5, atol 1e-6; measured: equal);
ONNX Runtime has its own convolutions (rtol 1e-4, atol 1e-5 on logits of about 1e-2; measured max abs
difference about 1e-7). A dynamic side starts where the last conv map is 2x2 (47 px for ZF-5), as
``spp_cls.export`` sets it; torch.export rejects a 1-long dynamic map.
"""

from __future__ import annotations

import warnings
from functools import partial

import onnxruntime as ort
import pytest
import timm
import torch
from torch.export import Dim

from spp_cls.models import ARCHITECTURES

EXAMPLE = (256, 192)  # the export example; every checked size differs from it
SIZES = [(180, 180), (224, 224), (197, 311)]
PROGRAM_CLOSE = partial(torch.testing.assert_close, rtol=1e-5, atol=1e-6)
ORT_CLOSE = partial(torch.testing.assert_close, rtol=1e-4, atol=1e-5)


def make(name: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model(name, num_classes=10, width=0.25, fc_dim=64, **kwargs).eval()


def export_dynamic(model: torch.nn.Module) -> torch.export.ExportedProgram:
    side = model.arch.min_input_size(map_size=2)
    dims = {0: Dim("batch"), 2: Dim("height", min=side), 3: Dim("width", min=side)}
    return torch.export.export(model, (torch.randn(2, 3, *EXAMPLE),), dynamic_shapes=(dims,))


def onnx_session(program: torch.export.ExportedProgram) -> ort.InferenceSession:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onnx_program = torch.onnx.export(program, dynamo=True, input_names=["images"], output_names=["logits"])
    return ort.InferenceSession(onnx_program.model_proto.SerializeToString(), providers=["CPUExecutionProvider"])


def run_onnx(session: ort.InferenceSession, x: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(session.run(None, {"images": x.numpy()})[0])


def levels_that_do_not_divide(arch: str, height: int, width: int, levels=(6, 3, 2)) -> list[int]:
    """Pyramid levels n > 1 that do not divide a side of the last conv map (bins then differ in size)."""
    sides = ARCHITECTURES[arch].feature_size(height), ARCHITECTURES[arch].feature_size(width)
    return [n for n in levels if any(side % n for side in sides)]


def test_checked_sizes_have_maps_the_levels_do_not_divide() -> None:
    """The failure known from public SPP code (ONNX export breaks when a level does not divide the map)
    needs such maps: 10x10 (ZF-5, Convnet*-5) or 14x14 (Overfeat) at 180 px, 11x18 or 16x25 at 197x311 px,
    and 13x13 at 224 px for ZF-5, where no level but 1 divides the map."""
    for arch in ARCHITECTURES:
        for height, width in (SIZES[0], SIZES[2]):
            assert levels_that_do_not_divide(arch, height, width), (arch, height, width)
    assert levels_that_do_not_divide("zf5", *SIZES[1]) == [6, 3, 2]


SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    "name", ["zf5_spp", *(pytest.param(n, marks=SLOW) for n in ("convnet5_spp", "overfeat5_spp", "overfeat7_spp"))]
)
def test_spp_model_exports_with_dynamic_sizes(name: str) -> None:
    """One program for every size: torch.export's and ONNX Runtime's outputs equal eager's on sizes and
    batches other than the example's, down to the smallest dynamic side; a smaller side is refused."""
    model = make(name)
    program = export_dynamic(model)
    session = onnx_session(program)
    batch_dim, channels, height_dim, width_dim = session.get_inputs()[0].shape
    assert channels == 3 and all(isinstance(d, str) for d in (batch_dim, height_dim, width_dim))  # symbolic
    side = model.arch.min_input_size(map_size=2)
    for batch, (height, width) in [(1, SIZES[0]), (3, SIZES[1]), (2, SIZES[2]), (1, (side, side + 9))]:
        x = torch.randn(batch, 3, height, width)
        with torch.no_grad():
            expected = model(x)
            PROGRAM_CLOSE(program.module()(x), expected)
        ORT_CLOSE(run_onnx(session, x), expected)
    with pytest.raises(Exception, match=f">= {side}"):
        program.module()(torch.randn(1, 3, side - 1, 200))


def test_a_dynamic_size_without_a_minimum_says_which_minimum() -> None:
    """torch.export names the bound the model needs (a 2x2 last conv map) instead of freezing the size."""
    model = make("zf5_spp")
    dims = {2: Dim("height"), 3: Dim("width")}
    side = model.arch.min_input_size(map_size=2)
    with pytest.raises(Exception, match=rf"Dim\('height', min={side}\)"):
        torch.export.export(model, (torch.randn(2, 3, *EXAMPLE),), dynamic_shapes=(dims,))


def test_no_spp_model_exports_at_its_size_with_a_dynamic_batch() -> None:
    model = make("convnet5", img_size=180)
    program = torch.export.export(model, (torch.randn(2, 3, 180, 180),), dynamic_shapes=({0: Dim("batch")},))
    session = onnx_session(program)
    for batch in (1, 3):
        x = torch.randn(batch, 3, 180, 180)
        with torch.no_grad():
            expected = model(x)
        PROGRAM_CLOSE(program.module()(x), expected)
        ORT_CLOSE(run_onnx(session, x), expected)
    with pytest.raises(Exception):  # noqa: B017 (torch.export's guard error type is not public API)
        program.module()(torch.randn(1, 3, 224, 224))


def test_no_spp_model_refuses_a_dynamic_size() -> None:
    model = make("convnet5", img_size=180)
    dims = {2: Dim("height", min=64), 3: Dim("width", min=64)}
    with pytest.raises(Exception, match="specialized"):
        torch.export.export(model, (torch.randn(2, 3, 180, 180),), dynamic_shapes=(dims,))
