"""Command-line conveniences shared by the entry points."""

from __future__ import annotations

import sys


def resolve_printed_config() -> None:
    """Make ``--cfg job`` print values rather than ``${...}`` interpolations (Hydra's ``--resolve``)."""
    if "--cfg" in sys.argv and "--resolve" not in sys.argv:
        sys.argv.append("--resolve")
