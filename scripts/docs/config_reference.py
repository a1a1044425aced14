"""The configuration reference page (docs/reference/configuration.md), generated from the code so it cannot drift.

Two sources, both read generically:

- the structured configs ``spp_cls.config.schema.TrainConfig`` and ``EvaluateConfig``: every field, walked
  recursively through nested dataclasses with ``dataclasses.fields``, with its type, its schema default, its
  default as ``conf/train.yaml`` / ``conf/evaluate.yaml`` compose it, and the comments written beside and above
  it in the source (or the field's class docstring);
- the option files of every config group under ``conf/``: their header comments and their content.

The docs site generates the page at build time (``scripts/docs/hooks.py``); ``python
scripts/docs/config_reference.py [FILE]`` writes it to FILE or prints it.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import re
import sys
import textwrap
import tokenize
import typing
from pathlib import Path
from typing import Any, Iterator, Optional

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"
PAGE = "reference/configuration.md"
if str(REPO) not in sys.path:  # the spp_cls of this checkout, also when run as a script or by mkdocs
    sys.path.insert(0, str(REPO))


# ----------------------------------------------------------------------------------------------- the schema


@dataclasses.dataclass
class Row:
    key: str
    type: str
    schema_default: str
    composed: dict[str, str]  # config name (train, evaluate) -> its composed default
    doc: str


def _type_name(annotation: Any) -> str:
    text = annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)
    return text.replace("typing.", "")


def _nested_dataclass(annotation: Any) -> Optional[type]:
    """The dataclass a field holds (``X`` or ``Optional[X]``), if any."""
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        return annotation
    if typing.get_origin(annotation) is typing.Union:
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(inner) == 1:
            return _nested_dataclass(inner[0])
    return None


def field_comments(cls: type) -> dict[str, str]:
    """The comments of each field of a dataclass: the lines of comments right above it and the one beside it."""
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        lines = source.splitlines()
        line_comments: dict[int, str] = {}
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                line_comments[token.start[0]] = token.string.lstrip("#").strip()
        body = ast.parse(source).body[0]
        assert isinstance(body, ast.ClassDef)
        for node in body.body:
            if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
                continue
            above: list[str] = []
            row = node.lineno - 1
            while row >= 1 and lines[row - 1].strip().startswith("#"):
                above.insert(0, line_comments.get(row, ""))
                row -= 1
            beside = line_comments.get(node.end_lineno or node.lineno)
            if beside and beside.startswith("type:"):  # a type checker's note, not documentation
                beside = None
            if len(above) == 1 and (beside or len(above[0].split()) <= 4):
                above = []  # a heading over the fields that follow, not this field's description
            text = " ".join([*above, *([beside] if beside else [])]).strip()
            if text:
                comments[node.target.id] = text
    return comments


def class_doc(cls: type) -> str:
    """The class docstring, unless it is the signature dataclasses writes when there is none."""
    doc = inspect.getdoc(cls) or ""
    return "" if doc.startswith(f"{cls.__name__}(") else " ".join(doc.split())


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return "???"


def _show(value: Any) -> str:
    from omegaconf import MISSING

    if value is None:
        return "null"
    if isinstance(value, str) and value == MISSING:
        return "??? (required)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple, dict)):
        return str(value).replace("'", "").replace("True", "true").replace("False", "false").replace("None", "null")
    return str(value)


def schema_rows(cls: type, prefix: str = "") -> Iterator[tuple[str, Optional[type], dataclasses.Field, Any]]:
    """(key, nested dataclass or None, field, type) of every field of ``cls``, depth first."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        annotation = hints.get(f.name, f.type)
        nested = _nested_dataclass(annotation)
        yield key, nested, f, annotation
        if nested is not None:
            yield from schema_rows(nested, f"{key}.")


def _compose(name: str) -> Any:
    """The config ``conf/<name>.yaml`` composes to with no overrides (unresolved)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from spp_cls.config import register_configs

    register_configs()
    outer = GlobalHydra.instance().hydra  # a caller's Hydra (a test's), put back after
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(CONF), version_base="1.3"):
            return compose(name)
    finally:
        GlobalHydra.instance().clear()
        if outer is not None:
            GlobalHydra.instance().hydra = outer


def _composed_value(cfg: Any, key: str) -> str:
    from omegaconf import OmegaConf

    node = cfg
    for part in key.split("."):
        if node is None or not OmegaConf.is_dict(node) or node._is_none() or part not in node.keys():
            return "–"
        if OmegaConf.is_missing(node, part):
            return "??? (required)"
        node = node._get_node(part)  # the node itself: its value unresolved (interpolations shown as written)
        if node._is_none():
            return "null"
        if not OmegaConf.is_config(node):
            return _show(node._value())
    if OmegaConf.is_list(node):
        return _show(OmegaConf.to_container(node, resolve=False))
    return "–"


def collect_rows() -> tuple[list[Row], dict[str, str]]:
    from spp_cls.config.schema import EvaluateConfig, TrainConfig

    configs = {"train": TrainConfig, "evaluate": EvaluateConfig}
    composed = {name: _compose(name) for name in configs}
    rows: dict[str, Row] = {}
    from_yaml = yaml_comments()
    sections: dict[str, str] = {}  # key of a nested dataclass -> its docstring
    for name, schema in configs.items():
        for key, nested, f, annotation in schema_rows(schema):
            owner = _owner(schema, key)
            if nested is not None:
                sections.setdefault(key, class_doc(nested))
                continue
            if key not in rows:
                doc = field_comments(owner).get(f.name) or from_yaml.get(key, "")
                if not doc and (CONF / key).is_dir():
                    doc = f"set by the config group `{key}` (below)"
                rows[key] = Row(key, _type_name(annotation), _show(_default(f)), {}, doc)
            rows[key].composed[name] = _composed_value(composed[name], key)
    return list(rows.values()), sections


def _owner(schema: type, key: str) -> type:
    """The dataclass that declares the last part of ``key``."""
    cls = schema
    hints = typing.get_type_hints(cls)
    for part in key.split(".")[:-1]:
        cls = _nested_dataclass(hints[part])  # type: ignore[assignment]
        hints = typing.get_type_hints(cls)
    name = key.split(".")[-1]
    for klass in cls.__mro__:  # the class whose own body declares the field
        if name in getattr(klass, "__annotations__", {}):
            return klass
    return cls


_YAML_KEY = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z_][\w-]*):(?P<rest>.*)$")


def yaml_comments() -> dict[str, str]:
    """The comment beside each key in ``conf/``'s YAML files, by dotted key (the first one met: the top-level
    configs, then each group's files, the shared ``_*.yaml`` first)."""
    files = sorted(CONF.glob("*.yaml"))
    for directory in group_dirs():
        files += sorted(directory.glob("*.yaml"), key=lambda p: (not p.name.startswith("_"), p.name))
    found: dict[str, str] = {}
    for path in files:
        lines = path.read_text().splitlines()
        group = path.parent.relative_to(CONF).as_posix()
        package = "" if group == "." else group.replace("/", ".")
        for line in lines:
            if line.startswith("# @package"):
                target = line.split(maxsplit=2)[2].strip()
                package = "" if target == "_global_" else target
        stack: list[tuple[int, str]] = []
        for line in lines:
            match = _YAML_KEY.match(line)
            if not match:
                continue
            indent = len(match["indent"])
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, match["key"]))
            rest = match["rest"]
            if " #" not in rest and not rest.lstrip().startswith("#"):
                continue
            comment = rest.split("#", 1)[1].strip() if rest.lstrip().startswith("#") else rest.split(" #", 1)[1].strip()
            key = ".".join(k for k in [package, *(k for _, k in stack)] if k)
            if comment and not key.startswith("defaults"):
                found.setdefault(key, comment)
    return found


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    return "–" if text == "–" else f"`{_cell(text)}`"


def render_schema() -> list[str]:
    rows, sections = collect_rows()
    out: list[str] = []
    groups: dict[str, list[Row]] = {}
    for row in rows:
        head = row.key.rsplit(".", 1)[0] if "." in row.key else ""
        groups.setdefault(head, []).append(row)
    for head in sorted(groups, key=lambda h: (h != "", h)):
        title = f"`{head}.*`" if head else "Top-level keys"
        out += [f"### {title}", ""]
        if sections.get(head):
            out += [sections[head], ""]
        out += [
            "| key | type | default: `train.py` | default: `evaluate.py` | schema default | what it is |",
            "|---|---|---|---|---|---|",
        ]
        for row in groups[head]:
            train = row.composed.get("train", "not a key")
            evaluate = row.composed.get("evaluate", "not a key")
            cells = [
                f"`{row.key}`",
                _code(row.type),
                _code(train) if train != "not a key" else "not a key",
                _code(evaluate) if evaluate != "not a key" else "not a key",
                _code(row.schema_default),
                _cell(row.doc),
            ]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return out


# ----------------------------------------------------------------------------------------------- conf/ groups


def header_comment(path: Path) -> str:
    """The comment lines at the top of a YAML file (package directives left out)."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if not text.startswith("@package"):
            lines.append(text)
    return " ".join(" ".join(lines).split())


def group_dirs() -> list[Path]:
    return sorted(p for p in CONF.rglob("*") if p.is_dir() and any(p.glob("*.yaml")))


def render_groups() -> list[str]:
    out: list[str] = []
    for directory in group_dirs():
        group = directory.relative_to(CONF).as_posix()
        out += [f"### `{group}`", "", "| option | what it is |", "|---|---|"]
        options = sorted(directory.glob("*.yaml"))
        for path in options:
            name = path.stem
            label = f"`{group}={name}`" if not name.startswith("_") else f"`{name}` (included by the others)"
            out.append(f"| {label} | {_cell(header_comment(path)) or '–'} |")
        out.append("")
        for path in options:
            out += [f'??? note "conf/{group}/{path.name}"', "", "    ```yaml"]
            out += [f"    {line}".rstrip() for line in path.read_text().rstrip("\n").splitlines()]
            out += ["    ```", ""]
    return out


def render() -> str:
    top = [path for path in sorted(CONF.glob("*.yaml"))]
    out = [
        "# Configuration reference",
        "",
        "<!-- generated by scripts/docs/config_reference.py when the site is built: edit the code, not this page -->",
        "",
        "This page is generated from the code when the site is built: the keys, types and schema defaults from the",
        "structured configs (`spp_cls.config.schema.TrainConfig` and `EvaluateConfig`), the comments beside each",
        "field in their source, the defaults that "
        + " and ".join(f"`conf/{p.name}`" for p in top)
        + " compose to, and every option file of every config group under `conf/`. A key that is not in the schema",
        "stops a run before it starts. How the pieces fit together: [Configuration](../configuration.md).",
        "",
        "`–` in a default column: the key holds a group of keys, or the config sets nothing there. `???`: required.",
        "`${...}`: an interpolation, resolved when the run starts.",
        "",
        "## Keys",
        "",
        *render_schema(),
        "## Config groups",
        "",
        "Choose an option with `group=option` on the command line (`model=overfeat7`, `trainer=gpu`). Files whose",
        "name starts with `_` are included by the other options of their group.",
        "",
        *render_groups(),
    ]
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if argv:
        Path(argv[0]).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
