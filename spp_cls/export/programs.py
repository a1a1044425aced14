"""torch.export programs (.pt2) and ONNX models (.onnx) of an ``SppNet`` (pure torch and onnx).

SPP models and timm backbones (either head) export with a dynamic batch, height and width; no-SPP models
with a dynamic batch at the one size they were built for. A dynamic side starts at ``min_dynamic_side``, the
smallest input whose last conv map is 2x2: torch.export assumes that a dynamic length is never 1, so a 1-long
map would freeze the size.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Union, cast

import torch
from torch import nn
from torch.export import Dim

from spp_cls.io import write_atomic
from spp_cls.models import SppNet, model_name
from spp_cls.models.timm_backbone import TimmBackboneNet

Net = Union[SppNet, TimmBackboneNet]

FORMATS = (".pt2", ".onnx")
EXAMPLE_BATCH = 2  # a batch of 1 would be specialised to 1
INPUT_NAME, OUTPUT_NAME = "images", "logits"


def min_dynamic_side(model: Net) -> int:
    """Smallest height or width a dynamic-size program takes (its last conv map is at least 2x2)."""
    return model.arch.min_input_size(map_size=2)


ExportInputs = tuple[tuple[torch.Tensor], tuple[dict[int, Any]]]


def export_inputs(model: Net, height: int, width: int, dynamic: bool) -> ExportInputs:
    """The example input and the dynamic shapes of an export; ValueError for sizes the model does not take
    (eager's message) or a dynamic size that it cannot have."""
    name = model_name(model.arch.name, model.spp)
    if dynamic and model.fixed_input_size is not None:
        raise ValueError(f"{name} (no SPP) takes only {height}x{width} inputs; export it without --dynamic")
    side = min_dynamic_side(model)
    if dynamic and min(height, width) < side:
        raise ValueError(f"a dynamic {name} program takes sides of at least {side}; give an example size >= {side}")
    if isinstance(model, TimmBackboneNet):
        in_channels = model.in_chans
    else:
        in_channels = cast(nn.Conv2d, model.features.get_submodule("conv1.conv")).in_channels
    example = torch.randn(EXAMPLE_BATCH, in_channels, height, width)
    with torch.no_grad():
        model.eval()(example)  # raises eager's ValueError for a size this model does not take
    dims: dict[int, Any] = {0: Dim("batch")}
    if dynamic:
        dims.update({2: Dim("height", min=side), 3: Dim("width", min=side)})
    return (example,), (dims,)


def save_export(model: Net, path: str | Path, height: int, width: int, dynamic: bool) -> Path:
    """Export ``model`` (put in eval mode) to ``path`` atomically: a torch.export archive (.pt2) or an ONNX
    model (.onnx) whose input ``images`` and output ``logits`` have the named dims batch, height, width."""
    path = Path(path)
    if path.suffix not in FORMATS:
        raise ValueError(f"unknown export format {path.suffix!r} for {path}; name the file *.pt2 or *.onnx")
    args, dynamic_shapes = export_inputs(model, height, width, dynamic)
    if path.suffix == ".pt2":
        buffer = io.BytesIO()
        torch.export.save(torch.export.export(model, args, dynamic_shapes=dynamic_shapes), buffer)
        return write_atomic(path, buffer.getbuffer())
    program = torch.onnx.export(
        model, args, dynamic_shapes=dynamic_shapes, dynamo=True, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME]
    )
    assert program is not None  # dynamo=True always returns the program
    return write_atomic(path, program.model_proto.SerializeToString())
