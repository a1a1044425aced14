"""Atomic checkpoint writes and loads that refuse pickled code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from spp_cls.checkpointing import CheckpointError, load_safe, save_atomic


class Payload:
    """Unpickling this would run code; weights-only loading must refuse it."""

    def __reduce__(self) -> tuple:
        return (os.system, ("echo pwned",))


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "a.ckpt"
    save_atomic({"state_dict": {"w": torch.ones(2)}, "epoch": 3, "cfg": {"lr": 0.1}}, path)
    loaded = load_safe(path)
    assert loaded["epoch"] == 3 and torch.equal(loaded["state_dict"]["w"], torch.ones(2))
    assert [p.name for p in path.parent.iterdir()] == ["a.ckpt"]  # no temporary file left


def test_failed_write_keeps_the_old_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "last.ckpt"
    save_atomic({"epoch": 1}, path)

    def crash(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        save_atomic({"epoch": 2}, path)
    assert load_safe(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_pickled_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hook": Payload()}, path)
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_safe(path)


def test_missing_and_truncated(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_safe(tmp_path / "none.ckpt")
    path = tmp_path / "cut.ckpt"
    save_atomic({"state_dict": {"w": torch.randn(100)}}, path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="unreadable"):
        load_safe(path)
    (tmp_path / "list.ckpt").write_bytes(b"")
    torch.save([1, 2], tmp_path / "list.ckpt")
    with pytest.raises(CheckpointError, match="not a checkpoint dict"):
        load_safe(tmp_path / "list.ckpt")
