"""The ``python train.py …`` / ``python evaluate.py …`` commands shown in README.md and docs/, and how to compose
and validate them as the entry points would, in this process (no subprocess per command)."""

from __future__ import annotations

import json
import re
import shlex
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Transformer
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"
SHELL_BLOCKS = {"", "bash", "sh", "shell", "console"}
ENTRY_POINTS = {"train.py": "train", "evaluate.py": "evaluate"}
#: Hydra's own flags that take a value, and those that do not (``-m`` is handled apart)
VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--config-name", "-cn", "--config-path", "-cp"}
PLAIN_FLAGS = {"--resolve", "--help", "-h", "--hydra-help"}


@dataclass
class Command:
    source: str  # file:line
    text: str
    config: str  # train | evaluate
    overrides: list[str]
    multirun: bool = False
    prefix: list[str] = field(default_factory=list)  # overrides a wrapper script adds before the user's

    @property
    def id(self) -> str:
        return self.source


def documentation_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def shell_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, logical line) of every shell code block of a Markdown text; continuation lines joined."""
    fence: Optional[str] = None
    language = ""
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        match = re.match(r"^(`{3,}|~{3,})\s*([\w+-]*)", stripped)
        if fence is None:
            if match:
                fence, language = match.group(1), match.group(2).lower()
            continue
        if stripped.startswith(fence) and stripped.strip("`~") == "":
            fence = None
            continue
        if language not in SHELL_BLOCKS:
            continue
        if not pending:
            start = number
        line = stripped.removeprefix("$ ") if language == "console" else stripped
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield start, pending + line
        pending = ""


def strip_comment(line: str) -> str:
    """The line without its shell comment (a ``#`` that starts a word outside quotes)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def _script_overrides(script: Path, entry: str) -> list[str]:
    """The literal arguments a wrapper script gives ``entry`` (those with shell variables left out)."""
    for line in script.read_text().splitlines():
        if entry in line and not line.lstrip().startswith("#"):
            words = shlex.split(strip_comment(line))
            return [w for w in words[words.index(entry) + 1 :] if "$" not in w]
    raise AssertionError(f"{script} does not run {entry}")


def parse_command(words: list[str]) -> Optional[tuple[str, list[str], list[str]]]:
    """(config, wrapper's overrides, the command's arguments) if the words run train.py or evaluate.py."""
    for i, word in enumerate(words):
        name = Path(word).name
        if name in ENTRY_POINTS and i > 0 and Path(words[i - 1]).name.startswith("python"):
            return ENTRY_POINTS[name], [], words[i + 1 :]
        if word.endswith("scripts/demo.sh"):
            return "train", _script_overrides(REPO / "scripts" / "demo.sh", "train.py"), words[i + 1 :]
        if word.endswith("scripts/slurm/train.sbatch"):
            return "train", [], words[i + 1 :]
        if word == "spp-cls" and "docker" in words[:i] and i + 1 < len(words) and words[i + 1] in ("train", "evaluate"):
            return words[i + 1], [], words[i + 2 :]
    return None


def documented_commands() -> list[Command]:
    commands = []
    for path in documentation_files():
        name = path.relative_to(REPO) if path.is_relative_to(REPO) else path.name
        for number, line in shell_lines(path.read_text()):
            if not any(name in line for name in ("train.py", "evaluate.py", "demo.sh", "train.sbatch", "spp-cls")):
                continue
            line = re.sub(r"\$([A-Za-z_]\w*)", r"\1", strip_comment(line)).strip()  # $USER, $PWD: any value will do
            words = shlex.split(line)
            found = parse_command(words)
            if found is None:
                continue
            config, prefix, args = found
            multirun = "-m" in args or "--multirun" in args or "-m" in prefix
            overrides: list[str] = []
            skip = False
            for arg in args:
                if skip:
                    skip = False
                elif arg in ("-m", "--multirun") or arg in PLAIN_FLAGS:
                    pass
                elif arg in VALUE_FLAGS:
                    skip = True
                elif arg.startswith("-"):
                    raise AssertionError(f"{name}:{number}: unknown flag {arg} in {line!r}")
                else:
                    overrides.append(arg)
            prefix = [p for p in prefix if p not in ("-m", "--multirun")]
            commands.append(Command(f"{name}:{number}", line, config, overrides, multirun, prefix))
    return commands


# ------------------------------------------------------------------------------------------------ composing


@contextmanager
def hydra_context() -> Iterator[None]:
    """Hydra initialised on conf/ with the project's schemas and resolvers, as train.py and evaluate.py run."""
    from spp_cls.config import register_configs

    register_configs()
    outer = GlobalHydra.instance().hydra
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(CONF), version_base="1.3"):
            yield
    finally:
        GlobalHydra.instance().clear()
        if outer is not None:
            GlobalHydra.instance().hydra = outer


def jobs(command: Command) -> list[list[str]]:
    """The override lists of the jobs the command runs: one, or for ``-m`` jobs of the sweep (the experiment's
    ``hydra.sweeper.params`` and the command line's, the command line winning as in Hydra) that between them
    take every value of every swept key: as many as the longest list of values, not their product (every job
    of every experiment is composed by tests/config/test_experiments.py; this test is about the commands)."""
    overrides = [*command.prefix, *command.overrides]
    if not command.multirun:
        return [overrides]
    parser = OverridesParser.create()
    sweeps: dict[str, list[str]] = {}
    fixed = [o.input_line for o in parser.parse_overrides(overrides) if not o.is_sweep_override()]
    base = compose(command.config, overrides=fixed, return_hydra_config=True)
    params = base.hydra.sweeper.get("params") or {}
    for key, value in params.items():
        sweeps[key] = [f"{key}={v}" for v in str(value).split(",")]
    for parsed in parser.parse_overrides(overrides):
        key = parsed.get_key_element()
        if parsed.is_sweep_override():
            sweeps[key] = [f"{key}={v}" for v in parsed.sweep_iterator(transformer=Transformer.encode)]
        else:
            sweeps.pop(key, None)
    fixed = [o.input_line for o in parser.parse_overrides(overrides) if not o.is_sweep_override()]
    if not sweeps:
        return [fixed]
    count = max(len(values) for values in sweeps.values())
    return [[*fixed, *(values[i % len(values)] for values in sweeps.values())] for i in range(count)]


class StandIns:
    """Files and folders that stand in for the reader's data named in the docs (``data.root=/data/imagenet``,
    label files, checkpoints to resume): empty ones, in the layout the key expects, whether or not the path
    exists on this machine, so the start-up validation checks everything else a command sets, the same way
    everywhere."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.made: dict[tuple, str] = {}

    def file(self, name: str) -> str:
        path = self.root / "files" / Path(name).name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        return str(path)

    def folders(self, num_classes: int, train: str, val: str) -> str:
        key = ("folders", num_classes, train, val)
        if key not in self.made:
            root = self.root / f"folders-{num_classes}-{train}-{val}"
            for split in (train, val):
                for index in range(num_classes):
                    (root / split / f"n{index:08d}").mkdir(parents=True, exist_ok=True)
            self.made[key] = str(root)
        return self.made[key]

    def shards(self, num_classes: int, train: str, val: str) -> str:
        """A manifest (the format of spp_cls/data/shard_manifest.py) with enough shards for any reader count."""
        key = ("shards", num_classes, train, val)
        if key not in self.made:
            root = self.root / f"shards-{num_classes}-{train}-{val}"
            root.mkdir(parents=True, exist_ok=True)
            split = {
                "samples": 1024 * 100,
                "skipped": [],
                "shards": [{"name": f"s-{i:06d}.tar", "samples": 100} for i in range(1024)],
            }
            manifest = {
                "format": "spp-cls-shards",
                "version": 1,
                "classes": [f"n{i:08d}" for i in range(num_classes)],
                "splits": {train: split, val: split},
                "settings": {},
            }
            (root / "manifest.json").write_text(json.dumps(manifest))
            self.made[key] = str(root)
        return self.made[key]

    def apply(self, cfg: DictConfig) -> list[str]:
        """Point the keys that name the reader's files at stand-ins; return what was replaced."""
        replaced = []
        d = cfg.data

        def local(value: object) -> bool:  # a local path of the reader's
            return isinstance(value, str) and "://" not in value and not value.startswith("pipe:")

        with open_dict(cfg):
            if d.get("synthetic") is None and not OmegaConf.is_missing(d, "root") and local(d.root):
                replaced.append(f"data.root={d.root}")
                make = self.shards if d.format == "shards" else self.folders
                d.root = make(int(d.num_classes), str(d.train_split), str(d.val_split))
            for key in ("val_labels", "mean_image"):
                if local(d.get(key)):
                    replaced.append(f"data.{key}={d[key]}")
                    d[key] = self.file(str(d[key]))
            if d.get("val_label_map") not in (None, "sorted") and local(d.val_label_map):
                replaced.append(f"data.val_label_map={d.val_label_map}")
                d.val_label_map = self.file(str(d.val_label_map))
            ckpt = cfg.get("ckpt_path") if not OmegaConf.is_missing(cfg, "ckpt_path") else None
            if cfg.get("task_name") != "evaluate" and ckpt not in (None, "auto") and local(ckpt):
                replaced.append(f"ckpt_path={ckpt}")
                cfg.ckpt_path = self.file(str(ckpt))
        return replaced


_CHECKED: set[tuple[str, bool, tuple[str, ...]]] = set()


def check_job(command: Command, overrides: list[str], stand_ins: StandIns) -> None:
    """Compose one job as its entry point would and run the start-up validation; raise on any problem. A job
    already checked for another command (the same config, mode and overrides) is not checked again."""
    key = (command.config, command.multirun, tuple(overrides))
    if key in _CHECKED:
        return
    from spp_cls.config.schema import EvaluateConfig
    from spp_cls.config.validation import validate_run_config, validate_train_config

    cfg = compose(command.config, overrides=overrides, return_hydra_config=True)
    basic_launcher = "BasicLauncher" in str(cfg.hydra.launcher.get("_target_", ""))
    with open_dict(cfg):
        cfg.hydra.mode = RunMode.MULTIRUN if command.multirun and basic_launcher else RunMode.RUN
    HydraConfig.instance().set_config(cfg)
    try:
        job = cfg.copy()
        with open_dict(job):
            del job["hydra"]  # what compose without return_hydra_config gives, at half the cost
        stand_ins.apply(job)
        if command.config == "train":
            validate_train_config(job)
        else:
            validate_run_config(job, EvaluateConfig)
        _CHECKED.add(key)
    finally:
        HydraConfig.instance().cfg = None  # type: ignore[assignment]
