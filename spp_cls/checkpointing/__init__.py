"""Atomic checkpoint writes, weights-only loads and the choice of a resume checkpoint (pure torch)."""

from spp_cls.checkpointing.files import CheckpointError, load_safe, remove_stale_temporaries, save_atomic, write_atomic
from spp_cls.checkpointing.resume import newest_checkpoint, resolve_resume_path

__all__ = [
    "CheckpointError", "load_safe", "newest_checkpoint", "remove_stale_temporaries", "resolve_resume_path", "save_atomic",
    "write_atomic",
]
