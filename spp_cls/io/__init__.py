"""Generic file IO at the bottom of the package: atomic writes, lock files, temporaries of dead writers, the
swap of a finished folder, and a one-pass reader of tar archives. Nothing here knows about checkpoints, images
or models."""

from spp_cls.io.files import (
    exclusive_lock,
    host_name,
    remove_stale_temporaries,
    replace_directory,
    temporary_path,
    write_atomic,
)
from spp_cls.io.tar_stream import TarFormatError, tar_members

__all__ = [
    "TarFormatError",
    "exclusive_lock",
    "host_name",
    "remove_stale_temporaries",
    "replace_directory",
    "tar_members",
    "temporary_path",
    "write_atomic",
]
