"""MkDocs hooks of the docs site (``hooks:`` in mkdocs.yml): the configuration reference is generated from the
code at every build (scripts/docs/config_reference.py), so it cannot drift from the schema or conf/."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

sys.path.insert(0, str(Path(__file__).resolve().parent))
import config_reference  # noqa: E402


def on_files(files: Files, config: Any) -> Files:
    files.append(File.generated(config, config_reference.PAGE, content=config_reference.render()))
    return files
