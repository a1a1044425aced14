"""Checkpoint files (pure torch): atomic saves, weights-only loads and the choice of the checkpoint a run
resumes from. The generic file IO they build on is ``spp_cls.io``."""

from spp_cls.checkpointing.files import CheckpointError, load_safe, save_atomic
from spp_cls.checkpointing.resume_path import newest_checkpoint, resolve_resume_path

__all__ = ["CheckpointError", "load_safe", "newest_checkpoint", "resolve_resume_path", "save_atomic"]
