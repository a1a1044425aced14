"""The class index a prediction is named by: ``--classes FILE`` (one label per line, as the ``classes.txt`` that
training writes into its run directory), else the index saved with the run, else the class numbers; it must
have one label per output of the model. ImageNet-1k wnids are shown by their readable names (``imagenet.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from spp_cls.predict.errors import PredictError
from spp_cls.predict.imagenet import readable_names


def read_class_file(path: str | Path) -> list[str]:
    """The labels of a class index file, one per line (blank lines ignored)."""
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise PredictError(f"--classes {path}: cannot read it ({err.__class__.__name__})") from err
    return [line.strip() for line in lines if line.strip()]


def class_index(
    num_classes: int, saved: Optional[list[str]], class_file: Optional[str], model: str
) -> tuple[list[str], list[str]]:
    """(labels, readable names) of the ``num_classes`` outputs of ``model``; a count that differs is an error."""
    if class_file is not None:
        labels, source = read_class_file(class_file), class_file
    elif saved is not None:
        labels, source = saved, "the run's class index"
    else:
        labels, source = [str(i) for i in range(num_classes)], ""
    if len(labels) != num_classes:
        raise PredictError(f"{source} has {len(labels)} classes but {model} has {num_classes} outputs")
    return labels, readable_names(labels)
