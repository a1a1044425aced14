"""Training runs below some folders: where they are, how far they got (done / running / failed), what they
were configured with, and the error rates that they and their evaluate.py evaluations wrote.

A training run is a folder with ``.hydra/config.yaml`` whose config has no ``protocols`` key (evaluate.py runs
have one). Its files are those of docs/getting-started.md ("Run directories"); only files are read (and the
config resolvers of spp_cls.config.schema used), so a report can be made on any machine that holds copies of the
run folders.
"""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

import yaml

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
ARMS: dict[str, str] = {
    "no_spp": "no SPP",
    "single": "SPP single-size",
    "multi": "SPP multi-size",
    "random": "SPP random-size",
}
#: which checkpoint a number comes from: the final model, or the epoch of lowest validation error (selected on
#: the split it reports); runs written before metrics.json had ``eval_checkpoint`` tested the best checkpoint
LAST, BEST = "last", "best"
LEGACY_EVAL_CHECKPOINT = BEST
#: evaluate.py's test protocols, and "val": the training run's own final validation (metrics.json val/*)
PROTOCOLS = ("center", "ten_view", "full", "full_flip", "multiview_18", "multiview_96", "multiview")
SOURCES = PROTOCOLS + ("val",)

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
    #: protocol.multiview of the evaluate.py run (its .hydra/config.yaml), else of the training run whose
    #: evaluate_protocols wrote it: what the multi-view numbers are comparable with
    multiview: Optional[dict[str, Any]] = None


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
    def arm_label(self) -> str:
        """The arm in words: the paper's arm names; a timm backbone without SPP keeps its own global pooling,
        and says so (``global pooling``, ``global pooling multi-size``)."""
        if self.arm == "no_spp" and self.get("model.backbone"):
            return "global pooling" + (" multi-size" if len(set(map(str, self.train_sizes))) > 1 else "")
        return ARMS.get(self.arm, self.arm)

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
        found = self.evaluation_of(protocol)
        return found.protocols[protocol] if found else None

    def evaluation_of(self, protocol: str) -> Optional[Evaluation]:
        """The newest evaluation (metrics.json) of this run that has ``protocol``, if any."""
        for evaluation in sorted(self.evaluations, key=lambda e: (e.mtime, str(e.path)), reverse=True):
            if protocol in evaluation.protocols:
                return evaluation
        return None

    @property
    def eval_checkpoint(self) -> Optional[str]:
        """``last`` or ``best``: what the run's own after-training validation and protocols tested (runs from
        before metrics.json said it tested the best); None for a run that is not done."""
        if not self.metrics:
            return None
        return str(self.metrics.get("eval_checkpoint", LEGACY_EVAL_CHECKPOINT))

    @property
    def eval_checkpoint_recorded(self) -> bool:
        return bool(self.metrics) and "eval_checkpoint" in self.metrics  # type: ignore[operator]

    def checkpoint_kind(self, source: str) -> Optional[str]:
        """Which checkpoint the numbers of ``source`` come from: ``last``, ``best``, or the file's name for any
        other file an evaluate.py run was given; None where the run has no such numbers."""
        if source == "val":
            return self.eval_checkpoint
        found = self.evaluation_of(source)
        if found is None:
            return None
        path = found.checkpoint
        for kind, key in ((LAST, "last_checkpoint"), (BEST, "best_checkpoint")):
            if self.metrics and path == self.metrics.get(key):
                return kind
        if self.metrics and path == self.metrics.get("evaluated_checkpoint"):
            return self.eval_checkpoint
        return Path(path).stem  # a copied run folder keeps another machine's paths: last.ckpt / best.ckpt by name

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


#: resolvers a saved config may use that the report does not evaluate: ``spp_run_dir`` needs a running Hydra job,
#: the others (``oc.env``, ``hydra``) would read this machine's environment, not the one the run had
_RESOLVER = re.compile(r"\$\{\s*([\w.]+)\s*:")
_UNRESOLVED = "${spp_report_unresolved:}"  # a resolver nobody registers: what refers to it stays as written
MACHINE_RESOLVERS = ("spp_run_dir", "spp_cwd")  # the run's folders, not values: they differ per machine


def _evaluable(value: str) -> bool:
    """Whether an interpolation uses only references and the project's value resolvers (``spp_*`` but
    ``spp_run_dir`` and ``spp_cwd``): those give the same value on any machine."""
    return all(name.startswith("spp_") and name not in MACHINE_RESOLVERS for name in _RESOLVER.findall(value))


def _resolve(config: dict[str, Any]) -> dict[str, Any]:
    """The saved config (.hydra/config.yaml keeps interpolations as written) with its references
    (``${data.crop_size}``) and the project's resolvers (spp_cls.config.schema's ``spp_*``, whichever this
    version registers) evaluated by OmegaConf itself; a value that needs anything else (``${oc.env:...}``,
    ``${spp_run_dir:}``), or that fails, stays as written."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    from spp_cls.config.schema import register_configs

    register_configs()  # idempotent: the project's resolvers, as train.py has them

    def guarded(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: guarded(v) for k, v in value.items()}
        if isinstance(value, list):
            return [guarded(v) for v in value]
        return _UNRESOLVED if isinstance(value, str) and "${" in value and not _evaluable(value) else value

    try:
        tree = OmegaConf.create(guarded(config))
    except Exception:  # noqa: BLE001 - a malformed interpolation: nothing resolved, nothing lost
        return config

    def resolve(node: Any, raw: Any) -> Any:
        if isinstance(raw, dict):
            return {k: resolve(_child(node, k), v) for k, v in raw.items()}
        if isinstance(raw, list):
            return [resolve(_child(node, i), v) for i, v in enumerate(raw)]
        if not isinstance(raw, str) or "${" not in raw:
            return raw
        try:
            value = node()
            return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value
        except Exception:  # noqa: BLE001 - OmegaConf raises several kinds; the value then stays as written
            return raw

    return resolve(lambda: tree, config)


def _child(node: Any, key: Any) -> Any:
    """A deferred lookup of ``key`` below ``node`` (resolving happens, and may fail, only when called)."""
    return lambda: node()[key]


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
        return FAILED, _error_line(text[text.rfind("\n", 0, first_error) + 1 :])
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
    run = Run(
        path=path, config=_resolve(config), overrides=[str(o) for o in overrides or []], status=status, detail=detail
    )
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
            evaluation.multiview = _multiview_settings(path.parent, owner)
            owner.evaluations.append(evaluation)
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    return Discovery([runs[p] for p in sorted(runs, key=natural_order)], unmatched, problems)


def _multiview_settings(folder: Path, owner: Run) -> dict[str, Any]:
    """``protocol.multiview`` that an evaluation in ``folder`` ran with: of the evaluate.py run there, else of the
    training run (its evaluate_protocols); empty (the defaults: the paper's protocol) where neither says."""
    config: Any = None
    if (folder / CONFIG_FILE).is_file():
        try:
            config = _resolve(yaml.safe_load((folder / CONFIG_FILE).read_text()) or {})
        except (OSError, yaml.YAMLError):
            config = None
    node: Any = config if isinstance(config, dict) else owner.config
    for key in ("protocol", "multiview"):
        node = node.get(key) if isinstance(node, dict) else None
    return dict(node) if isinstance(node, dict) else {}


def natural_order(path: Path) -> list[Any]:
    """Sort key: job folders 2 before 10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]
