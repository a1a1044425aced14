"""What ``python -m spp_cls.predict`` writes: one line per image on stdout, skipped files and the totals on
stderr, and with ``--json OUT`` one JSON record per image (JSON Lines, written atomically at the end; whether OUT
can be written is checked before any image is read)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from spp_cls.data.folder import Skipped
from spp_cls.io import write_atomic
from spp_cls.predict.errors import PredictError
from spp_cls.predict.scoring import Prediction


def shown(path: str) -> str:
    """A path as a terminal can print it: a file name that is not UTF-8 (Python keeps its bytes as surrogates,
    which a strict stdout refuses) gets its odd bytes as ``\\xNN``. The JSON keeps the path itself."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def prediction_line(prediction: Prediction) -> str:
    """``PATH<TAB>name 0.873 | name 0.052 | ...``: the path first, so that the lines sort and cut by it."""
    top = " | ".join(f"{name} {p:.3f}" for name, p in zip(prediction.names, prediction.probabilities))
    return f"{shown(prediction.path)}\t{top}"


def skip_line(skipped: Skipped) -> str:
    return f"skipped {shown(skipped.path)}: {skipped.reason}"


def passed_over_line(paths: list[str], shown_at_most: int = 3) -> str:
    """What a directory scan left out: files without an image extension, some of them named."""
    named = ", ".join(shown(p) for p in paths[:shown_at_most]) + (", ..." if len(paths) > shown_at_most else "")
    return (
        f"passed over {len(paths)} file(s) without an image extension in the folders ({named}); images are "
        "decoded by content, so name such a file as an argument to predict it"
    )


def skip_record(skipped: Skipped) -> dict[str, Any]:
    """The record of an unreadable file: its path and why, in place of classes and probabilities."""
    return {"path": skipped.path, "error": skipped.reason}


def _cannot_write(path: Path, err: OSError) -> PredictError:
    where = f": {err.filename}" if err.filename else ""  # e.g. (File exists: a/b) for a file where a folder must be
    return PredictError(f"--json {path}: cannot write there ({err.strerror or type(err).__name__}{where})")


def check_writable(path: str | Path) -> None:
    """Fail before any image is read if ``--json OUT`` cannot be written: its folder is made (as the final write
    makes it) and a temporary file is created and removed in it (the atomic write needs that and a rename)."""
    path = Path(path)
    if path.is_dir():
        raise PredictError(f"--json {path} is a directory; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as err:
        raise _cannot_write(path, err) from err


def write_json(path: str | Path, records: list[dict[str, Any]]) -> Path:
    """The records as JSON Lines (one object per line), written atomically; a PredictError if that fails."""
    try:
        return write_atomic(Path(path), "".join(json.dumps(record) + "\n" for record in records))
    except OSError as err:
        raise _cannot_write(Path(path), err) from err
