"""Generic file IO at the bottom of the package: atomic writes, lock files, temporaries of dead writers and
the swap of a finished folder. Nothing here knows about checkpoints, images or models."""

from spp_cls.io.files import (
    exclusive_lock,
    host_name,
    remove_stale_temporaries,
    replace_directory,
    temporary_path,
    write_atomic,
)

__all__ = [
    "exclusive_lock",
    "host_name",
    "remove_stale_temporaries",
    "replace_directory",
    "temporary_path",
    "write_atomic",
]
