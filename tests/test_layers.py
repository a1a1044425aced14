"""The package's layers and the one direction of their imports, checked on the source of every module.

A package may import only packages of a lower rank (and itself). The ranks, and why each package sits where
it does:

- 0 ``io``: generic file IO (atomic writes, locks, stale temporaries); knows nothing of spp-cls, not even torch.
- 1 ``models``: the networks, pure torch. ``checkpointing``: checkpoint files (atomic torch saves, weights-only
  loads, the choice of a resume checkpoint); pure torch on top of ``io``, it needs no network and no data, and
  everything above (data module state, Lightning, the CLI, export) reads checkpoints through it.
- 2 ``data``: images, their pipeline and ``data.*`` (``DataConfig``); may use the networks' geometry.
- 3 ``evaluation``: test protocols on the data's views and the networks; ``protocol.*`` (``ProtocolConfig``).
- 4 ``lightning``: the Lightning module, data module, callbacks and cluster glue around the layers below.
- 5 ``export``: rebuilds a trained network through the Lightning module and writes programs; a front end of
  its own that must not depend on the training CLI. ``config``: the composition root's schema (it composes
  the layers' own config classes) and start-up validation (it calls the layers' own checks).
- 6 ``cli``: ``train.py``/``evaluate.py``: composes the config and builds everything from it. ``predict``:
  ``python -m spp_cls.predict``, a front end of its own (checkpoints and exported programs through the test
  protocols' views); it reads checkpoints as ``export`` does and uses none of the training CLI.
- 7 ``reporting``: reads the run folders and result files that the CLI writes (``cli.results``' file names,
  the config's resolvers) and sets them beside the paper's tables; nothing imports it.

``spp_cls/__init__.py`` imports ``models`` only (to register the networks in timm); it is left out, as is any
import inside ``if TYPE_CHECKING:``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "spp_cls"
RANKS = {
    "io": 0,
    "models": 1,
    "checkpointing": 1,
    "data": 2,
    "evaluation": 3,
    "lightning": 4,
    "export": 5,
    "config": 5,
    "cli": 6,
    "predict": 6,
    "reporting": 7,
}


def _type_checking_lines(tree: ast.Module) -> set[int]:
    """Line numbers inside ``if TYPE_CHECKING:`` blocks (imports for annotations only)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imported_packages(path: Path) -> list[tuple[int, str]]:
    """(line, spp_cls subpackage) of every import of spp_cls in the module at ``path``, at any depth (imports
    inside functions count: they run too)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = _type_checking_lines(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] if node.module != "spp_cls" else [f"spp_cls.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "spp_cls" and len(parts) > 1 and node.lineno not in skip:
                found.append((node.lineno, parts[1]))
    return found


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.parent != PACKAGE)


def test_every_package_has_a_rank() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert packages == set(RANKS), "give a new package its rank in RANKS (and say why in this docstring)"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path: Path) -> None:
    own = path.relative_to(PACKAGE).parts[0]
    upward = [
        f"line {line}: spp_cls.{target} (rank {RANKS.get(target)}) from {own} (rank {RANKS[own]})"
        for line, target in imported_packages(path)
        if target != own and RANKS.get(target, 99) >= RANKS[own]
    ]
    assert not upward, f"{path.relative_to(PACKAGE.parent)} imports a layer that is not below its own: {upward}"


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from spp_cls.cli.evaluate import evaluate\ndef f():\n    import spp_cls.io.files\n")
    assert imported_packages(module) == [(1, "cli"), (3, "io")]
