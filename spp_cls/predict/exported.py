"""Exported programs (``python -m spp_cls.export``: ONNX for ONNX Runtime, ``.pt2`` for torch.export) behind the
interface that the test protocols call on an ``SppNet``, so that the same protocol code scores both.

The protocols call the network on crops (``model(x)``) and, for whole images, ``model.features`` then
``model.forward_head``; a program is the whole network in one piece, so its ``features`` pass the image through
and ``forward_head`` runs the program. ``fixed_input_size`` is the one (height, width) a program exported
without ``--dynamic`` takes, None when it takes any height and width (``spp``): the whole-image protocols refuse a
fixed size (``TestProtocol.check_model``), and predict refuses crop protocols whose crop is not that size.
Protocols that pool windows on the feature maps (``multiview``) need the maps themselves and are refused
(``needs_feature_maps``).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch import nn

from spp_cls.evaluation.protocols import PROTOCOLS, MultiView
from spp_cls.predict.errors import PredictError


def needs_feature_maps(protocol: str) -> bool:
    """Whether ``protocol`` pools views on the network's feature maps (which an exported program does not expose)."""
    return issubclass(PROTOCOLS[protocol], MultiView)


class ExportedNet(nn.Module):
    """A program (``run``: float (N, 3, H, W) -> logits (N, C)) as a network the protocols can call."""

    def __init__(
        self, run: Callable[[torch.Tensor], torch.Tensor], num_classes: int, fixed_size: Optional[tuple[int, int]]
    ) -> None:
        super().__init__()
        self.run, self.num_classes, self.fixed_size = run, num_classes, fixed_size
        self.fixed_input_size = fixed_size  # what the protocols' check_model reads, as on an SppNet
        self.spp = fixed_size is None  # any height and width: the whole-image protocols may feed it
        self.features = nn.Identity()

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)


def _side(dim: Any) -> Optional[int]:
    """A program input dim as a fixed size, or None when it is dynamic (a name in ONNX, a SymInt in torch.export)."""
    return dim if isinstance(dim, int) else None


def _fixed(height: Any, width: Any) -> Optional[tuple[int, int]]:
    h, w = _side(height), _side(width)
    return (h, w) if h is not None and w is not None else None


def load_onnx(path: Path) -> ExportedNet:
    """An ONNX model on ONNX Runtime's CPU provider (the ``export`` extra installs onnxruntime)."""
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise PredictError(f"{path}: ONNX models need onnxruntime (pip install -e '.[export]')") from err
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception classes, without a public common base
        raise PredictError(f"{path} is not a readable ONNX model: {str(err).splitlines()[0][:200]}") from err
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(inputs[0].shape) != 4 or not isinstance(outputs[0].shape[-1], int):
        raise PredictError(f"{path} is not an image classifier exported by spp_cls.export (one (N, 3, H, W) input)")
    name = inputs[0].name

    def run(x: torch.Tensor) -> torch.Tensor:
        array = x.detach().to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(session.run(None, {name: array})[0]).to(x.device)

    return ExportedNet(run, outputs[0].shape[-1], _fixed(*inputs[0].shape[2:]))


def load_pt2(path: Path, device: torch.device) -> ExportedNet:
    """A torch.export program (``torch.export.load``: no pickled code) as a module on ``device``."""
    if not zipfile.is_zipfile(path):  # what torch.export.load would log a traceback for
        raise PredictError(f"{path} is not a torch.export program (.pt2 files are zip archives)")
    try:
        program = torch.export.load(path)
    except Exception as err:  # a zip without an export archive, a truncated file: torch raises several types
        raise PredictError(f"{path} is not a readable torch.export program: {str(err).splitlines()[0][:200]}") from err
    nodes = {node.name: node for node in program.graph.nodes}
    signature = program.graph_signature
    if len(signature.user_inputs) != 1 or len(signature.user_outputs) != 1:
        raise PredictError(f"{path} is not an image classifier exported by spp_cls.export (one (N, 3, H, W) input)")
    image_shape = nodes[signature.user_inputs[0]].meta["val"].shape
    num_classes = nodes[signature.user_outputs[0]].meta["val"].shape[-1]
    module = program.module().to(device)

    def run(x: torch.Tensor) -> torch.Tensor:
        return module(x)

    return ExportedNet(run, int(num_classes), _fixed(*image_shape[2:]))
