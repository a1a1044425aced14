"""Atomic checkpoint writes, weights-only loads and the choice of a resume checkpoint (pure torch); the
file-system helpers for folders that several processes or nodes write at once."""

from spp_cls.checkpointing.files import (
    CheckpointError, exclusive_lock, host_name, load_safe, remove_stale_temporaries, replace_directory, save_atomic,
    temporary_path, write_atomic,
)
from spp_cls.checkpointing.resume import newest_checkpoint, resolve_resume_path

__all__ = [
    "CheckpointError", "exclusive_lock", "host_name", "load_safe", "newest_checkpoint", "remove_stale_temporaries",
    "replace_directory", "resolve_resume_path", "save_atomic", "temporary_path", "write_atomic",
]
