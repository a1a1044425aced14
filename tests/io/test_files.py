"""Temporary names, stale-temporary removal and locks that hold with several processes and hosts writing
one folder (``spp_cls/io/files.py``)."""

from __future__ import annotations

import multiprocessing
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spp_cls.io import exclusive_lock, host_name, remove_stale_temporaries, temporary_path, write_atomic
from tests.io import concurrent

HANG_GUARD_S = 300  # only against a hang: the children normally finish in a small fraction of this


def _dead_pid() -> int:
    return int(
        subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout
    )


def test_temporary_names_differ_between_hosts_and_between_writers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Containers on two nodes can run their writers under one PID: the host name and a random token tell
    their temporaries apart."""
    monkeypatch.setattr(os, "getpid", lambda: 7)
    names = {}
    for host in ("node-a.cluster", "node-b.cluster"):
        monkeypatch.setattr(socket, "gethostname", lambda host=host: host)
        names[host] = temporary_path(Path("/run/last.ckpt"))
    assert names["node-a.cluster"] != names["node-b.cluster"]
    assert names["node-a.cluster"].name.startswith(".last.ckpt.tmp-node-a.cluster-7-")
    assert temporary_path(Path("/run/last.ckpt")) != temporary_path(Path("/run/last.ckpt"))  # same host and PID
    monkeypatch.setattr(socket, "gethostname", lambda: "bad/name with space")
    assert temporary_path(Path("/run/x")).parent == Path("/run") and "/" not in host_name()


def test_concurrent_writers_with_one_pid_never_leave_a_partial_file(tmp_path: Path) -> None:
    """Two processes (spawned) with the same PID on different hosts write one file at once: every read sees
    one writer's complete content, both writers succeed, and no temporary file is left."""
    target = tmp_path / "shared" / "file-list.json"
    payloads = [bytes([65 + i]) * (200_000 + 1000 * i) for i in range(2)]
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    writers = [
        context.Process(target=concurrent.write_repeatedly, args=(str(target), payload, 150, f"node{i}", 4242, start))
        for i, payload in enumerate(payloads)
    ]
    for writer in writers:
        writer.start()
    start.set()
    reads, deadline = 0, time.monotonic() + HANG_GUARD_S
    while any(w.is_alive() for w in writers) and time.monotonic() < deadline:
        try:
            content = target.read_bytes()
        except FileNotFoundError:
            continue
        assert content in payloads, f"read {len(content)} bytes that are no writer's whole file"
        reads += 1
    for writer in writers:
        writer.join(timeout=max(1.0, deadline - time.monotonic()))
    assert [w.exitcode for w in writers] == [0, 0]
    assert target.read_bytes() in payloads and reads > 0
    assert [p.name for p in target.parent.iterdir()] == ["file-list.json"]


def test_lock_excludes_other_processes(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    log = tmp_path / "log.txt"
    holders = [
        context.Process(target=concurrent.record_under_lock, args=(str(tmp_path / ".x.lock"), str(log), tag, 20, start))
        for tag in ("a", "b")
    ]
    for holder in holders:
        holder.start()
    start.set()
    for holder in holders:
        holder.join(timeout=HANG_GUARD_S)
    assert [h.exitcode for h in holders] == [0, 0]
    lines = log.read_text().splitlines()
    assert len(lines) == 80
    for entered, left in zip(lines[::2], lines[1::2]):  # every "in" is followed by the same holder's "out"
        assert entered.endswith(" in") and left == entered.replace(" in", " out")


def test_lock_that_the_file_system_refuses_is_reported_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fcntl

    def refuse(fd: int, operation: int) -> None:
        raise OSError(38, "Function not implemented")  # Lustre mounted without -o flock

    monkeypatch.setattr(fcntl, "flock", refuse)
    with exclusive_lock(tmp_path / ".x.lock") as held:
        assert held is False


def test_stale_temporaries_of_this_and_other_hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """This host's: removed when the writer is dead. Another host's: its PIDs mean nothing here, so it is kept
    until it is old enough that no write can still be going on. Folders (a generation's) alike."""
    monkeypatch.setattr(socket, "gethostname", lambda: "node-a.cluster")
    last = tmp_path / "last.ckpt"
    write_atomic(last, b"done")
    dead, alive = _dead_pid(), os.getpid()
    names = {
        "dead_here": f".last.ckpt.tmp-node-a.cluster-{dead}-0a1b2c3d",
        "alive_here": f".last.ckpt.tmp-node-a.cluster-{alive}-0a1b2c3d",
        "legacy_dead": f".last.ckpt.tmp-{dead}",
        "fresh_there": f".last.ckpt.tmp-node-b.cluster-{dead}-0a1b2c3d",
        "old_there": f".last.ckpt.tmp-node-b.cluster-{alive}-0a1b2c3d",
        "folder_dead_here": f".last.ckpt.tmp-node-a.cluster-{dead}-ffffffff",
        "other_file": ".last.ckpt.tmp-notes",
    }
    for key, name in names.items():
        if key.startswith("folder"):
            (tmp_path / name / "train").mkdir(parents=True)
        else:
            (tmp_path / name).write_bytes(b"partial")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(tmp_path / names["old_there"], (two_days_ago, two_days_ago))
    removed = {p.name for p in remove_stale_temporaries(last)}
    assert removed == {names[k] for k in ("dead_here", "legacy_dead", "old_there", "folder_dead_here")}
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {"last.ckpt", names["alive_here"], names["fresh_there"], names["other_file"]}
