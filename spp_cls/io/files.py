"""File-system helpers for every file spp-cls writes: atomic writes, and the code shared by everything that
writes into folders other processes (and other nodes) may write at the same time: temporary names unique
across hosts, the removal of a dead writer's temporaries, a lock file, and the swap of a finished folder into
place.

This is the bottom of the package: it imports nothing of spp_cls and not torch, so that the data layer, the
checkpoint files and helper processes can all use it (a spawned helper loads it without loading torch).
"""

from __future__ import annotations

import errno
import fcntl
import glob
import logging
import os
import secrets
import shutil
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional

log = logging.getLogger(__name__)

TEMPORARY_MARK = ".tmp-"
# Temporaries of other hosts cannot be asked whether their writer still runs; one this old is abandoned
# (no single write takes a day), so a shared folder does not collect them forever.
FOREIGN_TEMPORARY_AGE_S = 24 * 3600.0


def host_name() -> str:
    """This host's name, reduced to characters that are safe in a file name on every file system."""
    name = socket.gethostname() or "host"
    return "".join(c if c.isalnum() or c in "-." else "_" for c in name)[:64]


def temporary_path(path: str | Path) -> Path:
    """A name next to ``path`` that no other writer can pick: ``.<name>.tmp-<host>-<pid>-<token>``.

    The PID alone is not enough: containers on different nodes run their processes under the same PIDs,
    and two of them writing one file on shared storage would write into the same temporary file. The host
    name tells nodes apart where host names differ, and the random token where they do not (containers may
    share a host name too). Host and PID stay in the name so ``remove_stale_temporaries`` can tell a dead
    writer's file from a live one's.
    """
    path = Path(path)
    return path.with_name(f".{path.name}{TEMPORARY_MARK}{host_name()}-{os.getpid()}-{secrets.token_hex(4)}")


def write_atomic(path: str | Path, data: str | bytes | memoryview) -> Path:
    """Write ``data`` to a temporary file next to ``path``, flush it to disk and rename it over ``path``:
    readers see the old file or the new one, never half of one, even while other processes (on this host
    or others) write the same path. Every file spp-cls writes goes through here."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        with open(tmp, "xb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _writer(tmp: Path, path: Path) -> Optional[tuple[str, int]]:
    """(host, pid) of the process that made the temporary ``tmp`` of ``path``; None if it is not one.

    Names written before host names were added (``.<name>.tmp-<pid>``) belong to this host."""
    suffix = tmp.name[len(f".{path.name}{TEMPORARY_MARK}") :]
    if suffix.isdigit():
        return host_name(), int(suffix)
    parts = suffix.rsplit("-", 2)
    if len(parts) != 3 or not parts[0] or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1])


def remove_stale_temporaries(path: str | Path, foreign_age_s: float = FOREIGN_TEMPORARY_AGE_S) -> list[Path]:
    """Delete the temporaries (files or folders) that writes of ``path`` by processes no longer running
    left behind (``kill -9`` during a write); returns them.

    A temporary of this host is stale when its PID is not running. One of another host (shared storage)
    is stale only when it has not changed for ``foreign_age_s``: that host's processes cannot be asked.
    """
    path = Path(path)
    stale = []
    here, now = host_name(), time.time()
    for tmp in path.parent.glob(f".{glob.escape(path.name)}{TEMPORARY_MARK}*"):
        writer = _writer(tmp, path)
        if writer is None:
            continue
        host, pid = writer
        try:
            if host == here:
                if _running(pid):
                    continue
            elif now - tmp.lstat().st_mtime < foreign_age_s:
                continue
        except FileNotFoundError:  # finished or removed by someone else meanwhile
            continue
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        stale.append(tmp)
    return stale


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # no signal: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        pass
    return True


@contextmanager
def exclusive_lock(path: str | Path) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on the file ``path`` (created if missing) for the ``with`` block; yields
    whether the lock is held.

    Processes that build the same thing into a shared folder (one per node in a multi-node job) take turns
    instead of building it at once; the lock dies with its holder, so a killed builder never blocks the
    next one. Some network file systems refuse locks (e.g. Lustre without ``-o flock``): then this yields
    False and callers must stay correct without it, by building under a temporary name and renaming.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            held = True
        except OSError as err:
            log.warning("cannot lock %s (%s); going on without the lock", path, err)
            held = False
        try:
            yield held
        finally:
            if held:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def replace_directory(built: Path, target: Path, is_current: Callable[[Path], bool]) -> bool:
    """Move the finished folder ``built`` to ``target``, unless ``target`` is current already (another
    process finished the same work first): then ``built`` is deleted. Returns whether ``built`` was moved.

    An outdated ``target`` is first renamed aside (and then deleted), so ``target`` is never a mixture of
    two builds: at every moment it is the old folder, missing, or the new one. The caller checks that
    ``target`` is its own to replace.
    """
    for _ in range(3):  # another process may move a folder in between; it can only do so a few times
        if is_current(target):
            shutil.rmtree(built, ignore_errors=True)
            return False
        if target.exists():
            aside = temporary_path(target)
            try:
                os.rename(target, aside)
            except FileNotFoundError:
                pass
            else:
                shutil.rmtree(aside, ignore_errors=True)
        try:
            os.rename(built, target)
            return True
        except OSError as err:
            if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
    if is_current(target):
        shutil.rmtree(built, ignore_errors=True)
        return False
    raise RuntimeError(f"could not move {built} to {target}: other processes keep replacing it")
