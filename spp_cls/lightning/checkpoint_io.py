"""Lightning checkpoint plugin: every checkpoint Lightning writes or reads goes through our safe file I/O."""

from __future__ import annotations

from typing import Any, Callable, Optional

from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from spp_cls.checkpointing import load_safe, save_atomic


class SafeCheckpointIO(TorchCheckpointIO):
    """Atomic saves; weights-only loads whatever the caller asks for."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options; got {storage_options!r}")
        save_atomic(checkpoint, path)

    def load_checkpoint(
        self, path: Any, map_location: Optional[Callable] = None, weights_only: Optional[bool] = None
    ) -> dict[str, Any]:
        return load_safe(path, map_location=map_location or "cpu")
