"""``python -m spp_cls.predict``: the top-k classes of images by a training checkpoint or an exported program,
through the test protocols' own views (``docs/predict.md``)."""

from spp_cls.predict.errors import PredictError
from spp_cls.predict.model import LoadedModel, load_model

__all__ = ["LoadedModel", "PredictError", "load_model"]
