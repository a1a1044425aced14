"""The docs site builds with ``mkdocs build --strict`` (any warning, such as a broken link or an API page whose
module is gone, fails), its configuration reference is generated from the code, and nothing links outside the
repository."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from tests.docs.commands import REPO, documentation_files

pytest.importorskip("mkdocs", reason="the docs tools come with the dev extra (pip install -e '.[dev]')")


def config_reference() -> ModuleType:
    """scripts/docs/config_reference.py (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("config_reference", REPO / "scripts" / "docs" / "config_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mkdocs_build_strict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    monkeypatch.setenv("NO_MKDOCS_2_WARNING", "1")
    config = load_config(str(REPO / "mkdocs.yml"), site_dir=str(tmp_path / "site"), strict=True)
    build(config)  # raises mkdocs.exceptions.Abort on the first warning in strict mode
    reference = (tmp_path / "site" / "reference" / "configuration" / "index.html").read_text()
    for key in ("data.batch_size", "model.pyramid", "protocol.multiview.mapping", "eval_checkpoint"):
        assert f"<code>{key}</code>" in reference, key
    api = (tmp_path / "site" / "api" / "models" / "index.html").read_text()
    assert 'id="spp_cls.models.spp' in api  # the package page shows its submodules


def test_the_configuration_reference_covers_every_key_and_group_option() -> None:
    import dataclasses

    from spp_cls.config.schema import EvaluateConfig, TrainConfig

    page = config_reference().render()

    def keys(cls: type, prefix: str = "") -> list[str]:
        found = []
        for f in dataclasses.fields(cls):
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            inner = type(default) if dataclasses.is_dataclass(default) else None
            found += keys(inner, f"{prefix}{f.name}.") if inner else [f"{prefix}{f.name}"]
        return found

    for key in keys(TrainConfig) + keys(EvaluateConfig):
        assert f"`{key}`" in page, key
    for option in (REPO / "conf").rglob("*.yaml"):
        assert f"conf/{option.relative_to(REPO / 'conf').as_posix()}" in page, option


def test_no_link_points_outside_the_repository() -> None:
    links = re.compile(r"\]\(([^)\s]+)")
    for path in documentation_files():
        for target in links.findall(path.read_text()):
            assert "://" not in target, f"{path.name}: external link {target}"
            if target.startswith("#"):
                continue
            resolved = (path.parent / target.split("#")[0]).resolve()
            assert resolved.is_relative_to(REPO), f"{path.name}: {target} leaves the repository"
            generated = resolved == REPO / "docs" / "reference" / "configuration.md"
            assert resolved.exists() or generated, f"{path.name}: {target} does not exist"


def test_every_file_and_module_the_docs_name_exists() -> None:
    """Paths of the repository (`spp_cls/...`, `tests/...`, `scripts/...`, `conf/...`, `benchmarks/...`) and
    dotted names (`spp_cls.lightning.cluster.LocalGpuSets`) named in code spans: a rename breaks this test."""
    import importlib

    paths = re.compile(r"`((?:spp_cls|tests|scripts|conf|benchmarks|docker|requirements)/[\w./-]*\w)")
    names = re.compile(r"\b(spp_cls(?:\.\w+)+)")
    for page in documentation_files():
        text = page.read_text()
        for path in paths.findall(text):
            assert (REPO / path).exists(), f"{page.name}: {path} does not exist"
        for name in set(names.findall(text)):
            parts = name.split(".")
            for split in range(len(parts), 0, -1):
                try:
                    obj = importlib.import_module(".".join(parts[:split]))
                except ModuleNotFoundError:
                    continue
                for attribute in parts[split:]:
                    assert hasattr(obj, attribute), f"{page.name}: {name} does not exist"
                    obj = getattr(obj, attribute)
                break
