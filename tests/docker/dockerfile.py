"""Read docker/Dockerfile and .dockerignore the way Docker does, for tests that cannot build the image (no engine)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from tests.helpers import REPO

DOCKERFILE = REPO / "docker" / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


@dataclass(frozen=True)
class Instruction:
    word: str  # FROM, RUN, COPY, ... (upper case)
    args: str  # the rest of the instruction, continuation lines joined

    @property
    def words(self) -> list[str]:
        return shlex.split(self.args)


def instructions(path: Path = DOCKERFILE) -> list[Instruction]:
    """The instructions in order; comment lines (also inside continuations) are dropped, as Docker does."""
    found, current = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        current += line.removesuffix("\\").strip() + " "
        if not line.endswith("\\"):
            word, _, args = current.strip().partition(" ")
            found.append(Instruction(word.upper(), args.strip()))
            current = ""
    return found


def image_env() -> dict[str, str]:
    """The variables the ENV instructions set (NAME=VALUE form)."""
    pairs = (word.partition("=") for ins in instructions() if ins.word == "ENV" for word in ins.words)
    return {name: value for name, _, value in pairs}


def _match(pattern: list[str], parts: list[str]) -> bool:
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_match(pattern[1:], parts[start:]) for start in range(len(parts) + 1))
    return bool(parts) and fnmatchcase(parts[0], pattern[0]) and _match(pattern[1:], parts[1:])


def excluded_from_context(relative: str, patterns: list[str]) -> bool:
    """Whether .dockerignore ``patterns`` keep ``relative`` (a path in the repository) out of the build context:
    a pattern matches a path or any of its parent folders, ``*`` stays within one path segment, ``**`` spans any
    number, ``!`` re-includes, and the last matching pattern wins."""
    parts = relative.split("/")
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        segments = pattern.removeprefix("!").strip("/").split("/")
        if any(_match(segments, parts[:end]) for end in range(1, len(parts) + 1)):
            excluded = not negated
    return excluded


def ignore_patterns() -> list[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]
