"""Export trained networks as torch.export programs and ONNX models (``python -m spp_cls.export``)."""

from spp_cls.export.programs import export_inputs, min_dynamic_side, save_export

__all__ = ["export_inputs", "min_dynamic_side", "save_export"]
