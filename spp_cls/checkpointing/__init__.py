"""Atomic checkpoint writes and weights-only loads (pure torch)."""

from spp_cls.checkpointing.files import CheckpointError, load_safe, save_atomic, write_atomic

__all__ = ["CheckpointError", "load_safe", "save_atomic", "write_atomic"]
