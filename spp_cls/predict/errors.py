"""The one error type of ``python -m spp_cls.predict`` for problems the user can fix (a missing or unusable model,
a class index that does not fit it, a protocol it cannot run): the command prints its message as one line."""

from __future__ import annotations


class PredictError(RuntimeError):
    """A problem with the command's inputs, said in one line."""
