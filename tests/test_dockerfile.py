"""The Dockerfile cannot be built here (no engine); check what can be checked without one."""

from __future__ import annotations

import shlex

from tests.helpers import REPO

DOCKERFILE = REPO / "docker" / "Dockerfile"


def instructions() -> list[tuple[str, list[str]]]:
    lines, current = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        if raw.strip().startswith("#") or not raw.strip():
            continue
        current += raw.rstrip("\\").strip() + " "
        if not raw.rstrip().endswith("\\"):
            word, *rest = shlex.split(current)
            lines.append((word.upper(), rest))
            current = ""
    return lines


def test_copied_sources_exist_and_are_not_docker_ignored() -> None:
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines() if line.strip()}
    copies = [args[:-1] for word, args in instructions() if word == "COPY"]
    assert copies
    for sources in copies:
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: no such path"
            assert source.rstrip("/") not in ignored, f"COPY {source} is excluded by .dockerignore"


def test_installs_with_the_pinned_constraints_and_runs_unprivileged() -> None:
    words = instructions()
    assert words[0][0] == "FROM"
    runs = " ".join(" ".join(args) for word, args in words if word == "RUN")
    assert "-c requirements/constraints.txt" in runs
    assert ("USER", ["spp"]) in words
