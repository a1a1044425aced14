"""Training runs below some folders: where they are, how far they got (done / running / failed), what they
were configured with, and the error rates that they and their evaluate.py evaluations wrote.

A training run is a folder with ``.hydra/config.yaml`` whose config has no ``protocols`` key (evaluate.py runs
have one). Its files are those of README "Run directories"; only files are read (and the config resolvers of
spp_cls.config.schema used), so a report can be made on any machine that holds copies of the run folders.
"""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import yaml

from spp_cls.config.schema import paper_epochs, scaled_size

METRICS_FILE = "metrics.json"
CONFIG_FILE = Path(".hydra") / "config.yaml"
OVERRIDES_FILE = Path(".hydra") / "overrides.yaml"
TRAIN_LOG = "train.log"
#: text in train.log that means the run stopped with an error: a traceback, Hydra's job error, or the one
#: ERROR line of a user-fixable error (spp_cls.cli.errors: bad config, checkpoint or data, no traceback)
ERROR_MARKERS = ("Traceback", "Error executing job", "][ERROR] - ")
#: the first line train.py logs; one after the last error means the run was restarted (ckpt_path=auto)
START_MARKER = "- run directory: "

DONE, RUNNING, FAILED = "done", "running", "failed"

#: how a network was trained, in the order of the paper's Table 2 rows
ARMS: dict[str, str] = {"no_spp": "no SPP", "single": "SPP single-size", "multi": "SPP multi-size",
                        "random": "SPP random-size"}
#: evaluate.py's test protocols, and "val": the training run's own final validation (metrics.json val/*)
PROTOCOLS = ("center", "ten_view", "full", "full_flip", "multiview_18", "multiview_96", "multiview")
SOURCES = PROTOCOLS + ("val",)

_INNERMOST = re.compile(r"\$\{([^${}]*)\}")
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b")


@dataclass(frozen=True)
class ErrorRate:
    """Top-1 / top-5 error in percent (top-5 is None where the evaluation had none)."""

    top1: float
    top5: Optional[float]


@dataclass
class Evaluation:
    """One metrics.json of evaluate.py (several protocols), newest first wins where two give one protocol."""

    path: Path
    checkpoint: str
    protocols: dict[str, dict[str, Any]]
    mtime: float


@dataclass
class Run:
    """One training run directory and what it has written so far."""

    path: Path
    config: dict[str, Any]
    overrides: list[str]
    status: str
    detail: str = ""  # failed: the error line; running: when train.log was last written
    metrics: Optional[dict[str, Any]] = None
    finished: float = 0.0  # mtime of metrics.json: of runs with one seed, the newest that has a metric counts
    evaluations: list[Evaluation] = field(default_factory=list)

    def get(self, key: str, default: Any = None) -> Any:
        """A config value by dotted key (``model.arch``)."""
        node: Any = self.config
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    @property
    def arch(self) -> str:
        return str(self.get("model.arch", "?"))

    @property
    def spp(self) -> bool:
        return bool(self.get("model.spp", True))

    @property
    def pyramid(self) -> Optional[tuple[int, ...]]:
        """The SPP levels (None for a no-SPP model, whose pyramid setting is unused)."""
        levels = self.get("model.pyramid")
        return tuple(int(n) for n in levels) if self.spp and isinstance(levels, list) else None

    @property
    def train_sizes(self) -> list[Any]:
        sizes = self.get("data.train_sizes")
        return list(sizes) if isinstance(sizes, list) and sizes else [self.get("data.crop_size")]

    @property
    def arm(self) -> str:
        """One of :data:`ARMS`: several distinct training sizes make a multi-size (or random-size) run."""
        if not self.spp:
            return "no_spp"
        if len(set(map(str, self.train_sizes))) <= 1:
            return "single"
        return "random" if self.get("data.size_schedule") == "random" else "multi"

    @property
    def seed(self) -> Any:
        return self.get("seed")

    @property
    def data_name(self) -> str:
        return str(self.get("data.name", "?"))

    @property
    def epochs_trained(self) -> Optional[int]:
        """Epochs of a finished run (metrics.json), else the configured number."""
        if self.metrics and isinstance(self.metrics.get("epochs"), int):
            return self.metrics["epochs"]
        epochs = self.get("trainer.max_epochs")
        return epochs if isinstance(epochs, int) else None

    def evaluation(self, protocol: str) -> Optional[dict[str, Any]]:
        """The newest evaluation result of ``protocol`` for this run (a ``protocols`` entry), if any."""
        for evaluation in sorted(self.evaluations, key=lambda e: (e.mtime, str(e.path)), reverse=True):
            if protocol in evaluation.protocols:
                return evaluation.protocols[protocol]
        return None

    def protocols(self) -> list[str]:
        """The protocols some evaluation of this run has results for, in :data:`PROTOCOLS` order."""
        found = {name for evaluation in self.evaluations for name in evaluation.protocols}
        return sorted(found, key=lambda p: (PROTOCOLS.index(p) if p in PROTOCOLS else len(PROTOCOLS), p))

    def error(self, source: str) -> Optional[ErrorRate]:
        """The error rates of a finished run from ``source`` (a protocol or "val"), None where there are none."""
        if self.status != DONE:
            return None
        if source == "val":
            result = {k.removeprefix("val/"): v for k, v in (self.metrics or {}).items() if k.startswith("val/")}
        else:
            result = self.evaluation(source) or {}
        if result.get("top1_err") is None:
            return None
        top5 = result.get("top5_err")
        return ErrorRate(100 * float(result["top1_err"]), None if top5 is None else 100 * float(top5))


#: the project's own OmegaConf resolvers that a saved config may use (``${spp_scaled:180,${data.crop_size}}``)
RESOLVERS: dict[str, Callable[..., Any]] = {"spp_scaled": scaled_size, "spp_paper_epochs": paper_epochs}


def _resolve(config: dict[str, Any]) -> dict[str, Any]:
    """The saved config (.hydra/config.yaml keeps interpolations as written) with its plain references
    (``${data.crop_size}``) and the project's :data:`RESOLVERS` evaluated, innermost first; a value that needs
    anything else (``${oc.env:...}``, ``${spp_run_dir:}``) stays as written."""

    def evaluate(expression: str, depth: int) -> Any:
        name, colon, args = expression.partition(":")
        if colon:
            if name not in RESOLVERS:
                raise KeyError(name)
            return RESOLVERS[name](*(a.strip() for a in args.split(",")))
        node: Any = config
        for part in expression.split("."):
            if not isinstance(node, dict) or part not in node:
                raise KeyError(expression)
            node = node[part]
        return resolve(node, depth + 1)

    def resolve(value: Any, depth: int = 0) -> Any:
        if isinstance(value, dict):
            return {k: resolve(v, depth) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v, depth) for v in value]
        if not isinstance(value, str) or "${" not in value or depth > 8:
            return value
        text = value
        try:
            while match := _INNERMOST.search(text):
                result = evaluate(match.group(1), depth)
                if match.span() == (0, len(text)):
                    return result  # the whole value: keep its type (an int size, a list)
                text = text[:match.start()] + str(result) + text[match.end():]
        except (KeyError, TypeError, ValueError):
            return value
        return text

    return resolve(config)


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"arch": "zf5"}}`` -> ``{"model.arch": "zf5"}`` (lists stay values)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _error_line(text: str) -> str:
    """What went wrong, from the log text at the first error marker: the exception line of a traceback, else
    the error message (with its first detail line when it ends with a colon)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    found = [line for line in lines if _EXCEPTION_LINE.match(line)]
    if found:
        line = found[-1]
    else:
        line = lines[0].split("] - ", 1)[-1]
        if line.endswith(":") and len(lines) > 1:
            line += " " + lines[1]
    return line if len(line) <= 160 else line[:157] + "..."


def run_status(path: Path) -> tuple[str, str]:
    """(status, detail): done when metrics.json exists (training writes it last); failed when train.log shows
    an error after the last (re)start; running otherwise (including a run killed without a trace)."""
    if (path / METRICS_FILE).is_file():
        return DONE, ""
    log = path / TRAIN_LOG
    if not log.is_file():
        return RUNNING, "no train.log yet"
    text = log.read_text(errors="replace")
    error_at = max(text.rfind(marker) for marker in ERROR_MARKERS)
    if error_at >= 0 and text.rfind(START_MARKER) < error_at:
        restart = text.rfind(START_MARKER)
        first_error = min(i for m in ERROR_MARKERS if (i := text.find(m, max(restart, 0))) >= 0)
        return FAILED, _error_line(text[text.rfind("\n", 0, first_error) + 1:])
    stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(log.stat().st_mtime))
    return RUNNING, f"train.log last written {stamp}"


def _read_json(path: Path) -> Optional[dict[str, Any]]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def read_run(path: Path) -> Optional[Run]:
    """The training run in ``path`` (a folder with .hydra/config.yaml), None if it is an evaluate.py run."""
    config = yaml.safe_load((path / CONFIG_FILE).read_text()) or {}
    if not isinstance(config, dict) or "protocols" in config:
        return None
    overrides_file = path / OVERRIDES_FILE
    overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
    status, detail = run_status(path)
    run = Run(path=path, config=_resolve(config), overrides=[str(o) for o in overrides or []], status=status,
              detail=detail)
    if status == DONE:
        run.metrics = _read_json(path / METRICS_FILE)
        run.finished = (path / METRICS_FILE).stat().st_mtime
        if run.metrics is None:
            run.status, run.detail = FAILED, "unreadable metrics.json"
    return run


def _owner(evaluation: Evaluation, runs: dict[Path, Run]) -> Optional[Run]:
    """The training run an evaluation belongs to: the run of its checkpoint (…/<run>/checkpoints/x.ckpt), else
    the run folder it lies in, else the one run whose last two path parts match the checkpoint's run (copied
    run folders keep the checkpoint path of the machine that trained them)."""
    ckpt_run = Path(evaluation.checkpoint).parent.parent
    if ckpt_run.resolve() in runs:
        return runs[ckpt_run.resolve()]
    for parent in evaluation.path.parents:
        if parent in runs:
            return runs[parent]
    if len(ckpt_run.parts) >= 2:
        tails = [run for path, run in runs.items() if path.parts[-2:] == ckpt_run.parts[-2:]]
        if len(tails) == 1:
            return tails[0]
    return None


@dataclass
class Discovery:
    """Everything found below the folders: the training runs (in path order), and what could not be used."""

    runs: list[Run]
    unmatched_evaluations: list[Path]  # ensembles, and evaluations of runs outside the folders
    problems: list[str]


def discover(dirs: Iterable[str | Path]) -> Discovery:
    """Every training run below ``dirs`` (any depth; a run found twice counts once), with its status and the
    evaluate.py results that belong to it."""
    roots = [Path(d).resolve() for d in dirs]
    runs: dict[Path, Run] = {}
    evaluations: dict[Path, Evaluation] = {}
    ensembles: list[Path] = []
    problems: list[str] = []
    for root in roots:
        for config in root.rglob("config.yaml"):
            folder = config.parent.parent
            if config.parent.name != ".hydra" or folder in runs:
                continue
            try:
                run = read_run(folder)
            except (OSError, yaml.YAMLError) as error:
                problems.append(f"{folder}: unreadable .hydra files ({error.__class__.__name__})")
                continue
            if run is not None:
                runs[folder] = run
        for path in root.rglob(METRICS_FILE):
            result = _read_json(path)
            if result is None or not isinstance(result.get("protocols"), dict) or path in evaluations:
                continue
            if isinstance(result.get("checkpoint"), str):
                evaluations[path] = Evaluation(path, result["checkpoint"], result["protocols"], path.stat().st_mtime)
            else:
                ensembles.append(path)  # several checkpoints: no single run's result
    unmatched = ensembles
    for path, evaluation in sorted(evaluations.items()):
        owner = _owner(evaluation, runs)
        if owner is None:
            unmatched.append(path)
        else:
            owner.evaluations.append(evaluation)
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    return Discovery([runs[p] for p in sorted(runs, key=natural_order)], unmatched, problems)


def natural_order(path: Path) -> list[Any]:
    """Sort key: job folders 2 before 10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]
