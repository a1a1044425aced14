"""An exponential moving average (EMA) of the weights, through Lightning's ``EMAWeightAveraging``, and the choice
between the EMA and the raw weights of a checkpoint (``eval_weights=ema|raw``).

Lightning's callback keeps the average, saves it in every checkpoint as ``state_dict`` (the raw weights under
``current_model_state``, the average's counter under ``averaging_state``) and restores both on resume. ``EMA``
adjusts it to this project's runs in five ways:

- exact resume whatever the callback order: a checkpoint written in a batch end before the callback's own update
  of that step (``ResumeCheckpoint`` may come first) first makes that update, as the uninterrupted run does a
  moment later; otherwise the resumed run would miss one update;
- the average lives on the module's device once the fit has put it there (Lightning builds it in ``setup``,
  before the module moves to the GPU);
- training's validations test the weights ``eval_weights`` names (``validate_average``), so the plateau schedule
  and best.ckpt follow the weights that will be reported; outside the fit (``trainer.validate``/``test``) it
  neither loads nor swaps anything: the caller chooses the weights;
- at the end of training the module keeps its raw weights (the checkpoint holds both), so the final checkpoint
  written after it still has the raw weights under ``current_model_state``;
- before the first update (``update_starting_at_step`` not reached yet) there is no average: Lightning's average
  model is still the copy of the initial weights made in ``setup``. Validations then test the raw weights, and a
  checkpoint's ``state_dict`` is the raw weights too (its ``averaging_state`` counter ``n_averaged`` is 0), so
  ``eval_weights=ema``, predict and the export get the trained weights, and ``checkpoint_weights`` reports them as
  ``raw``. The first update copies the weights whatever the average held, so a run resumed from such a checkpoint
  continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Optional

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks.weight_averaging import EMAWeightAveraging
from pytorch_lightning.trainer.states import TrainerFn

#: eval_weights: the EMA weights (when the checkpoint has them) or the optimizer's own
EVAL_WEIGHTS = ("ema", "raw")
#: where Lightning's WeightAveraging puts the raw weights in a checkpoint (``state_dict`` then holds the average)
RAW_STATE = "current_model_state"
#: where it puts the average's other state, among which ``n_averaged``, the number of updates made
AVERAGING_STATE = "averaging_state"

log = logging.getLogger(__name__)


class EMA(EMAWeightAveraging):
    """EMA of all parameters and buffers, updated after every optimizer step (see the module docstring).

    Args:
        decay: the weight of the average in each update (0.9998: a horizon of ~5,000 steps).
        update_starting_at_step: first optimizer step (0-based) that updates the average (None: the first).
        validate_average: training's validations test the average (eval_weights=ema) rather than the raw weights.
    """

    def __init__(
        self, decay: float = 0.9998, update_starting_at_step: Optional[int] = None, validate_average: bool = True
    ) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"callbacks.ema.decay must be in (0, 1); got {decay}")
        super().__init__(decay=decay, update_starting_at_step=update_starting_at_step)
        self.decay, self.validate_average = decay, validate_average
        self._swapped = False  # a validation runs with the average swapped in
        self._said_no_update = False  # the log said once that validations test the raw weights for now

    def has_average(self) -> bool:
        """Whether the average has had an update (before that it is the copy of the initial weights)."""
        return self._average_model is not None and int(self._average_model.n_averaged) > 0

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        with warnings.catch_warnings():  # the module's configure_model only applies runtime switches: no sharding
            warnings.filterwarnings("ignore", message=".*WeightAveraging callback with a model that overrides")
            super().setup(trainer, pl_module, stage)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._average_model is not None:
            self._average_model.to(pl_module.device)
        start = self.update_starting_at_step
        if start is None or not trainer.is_global_zero:
            return
        steps = fit_steps(trainer, pl_module)
        if steps is not None and start >= steps:
            # said now, not only at the end: a run that will make no average is better stopped in its first minute
            log.warning(
                "EMA: callbacks.ema.update_starting_at_step=%d is at or beyond the run's %d optimizer steps: no "
                "average will be made, and the checkpoints will hold the raw weights",
                start,
                int(steps),
            )

    def _catch_up(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The update of the step just taken, if this callback has not made it yet (see the module docstring)."""
        step = trainer.global_step
        if self._average_model is not None and step > self._latest_update_step and self.should_update(step - 1):
            self._average_model.update_parameters(pl_module)
            self._latest_update_step = step

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking:
            self._catch_up(trainer, pl_module)
            # Lightning took this callback's state_dict before this hook: record the update just made, or a run
            # resumed here would make it a second time
            saved = checkpoint.get("callbacks", {}).get(self.state_key)
            if isinstance(saved, dict):
                saved.update(self.state_dict())
        super().on_save_checkpoint(trainer, pl_module, checkpoint)
        if self._average_model is not None and not self.has_average():
            # no update yet: the "average" is the initial weights; readers of state_dict get the raw ones
            checkpoint["state_dict"] = dict(checkpoint[RAW_STATE])

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)

    def _swaps(self, trainer: pl.Trainer) -> bool:
        return self.validate_average and trainer.state.fn == TrainerFn.FITTING

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._swaps(trainer):
            return
        if self.has_average():
            super().on_validation_epoch_start(trainer, pl_module)
            self._swapped = True
        elif not trainer.sanity_checking and not self._said_no_update:
            self._said_no_update = True
            if trainer.is_global_zero:
                log.info(
                    "EMA: no update yet at step %d (update_starting_at_step=%s): validating the raw weights "
                    "until the first update",
                    trainer.global_step,
                    self.update_starting_at_step,
                )

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._swapped:
            super().on_validation_epoch_end(trainer, pl_module)
            self._swapped = False

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._catch_up(trainer, pl_module)  # keep the raw weights in the module (see the module docstring)
        if self._average_model is not None and not self.has_average() and trainer.is_global_zero:
            log.warning(
                "EMA: update_starting_at_step=%s was not reached in the run's %d steps: no average was made, the "
                "checkpoints hold the raw weights and eval_weights=ema tests them (evaluated_weights: raw)",
                self.update_starting_at_step,
                trainer.global_step,
            )


def fit_steps(trainer: pl.Trainer, pl_module: pl.LightningModule) -> Optional[int]:
    """The optimizer steps the fit will take, or None when unknown: the module's ``fit_optimizer_steps`` (not
    Lightning's ``estimated_stepping_batches``, which would break a resume: module.py says why), else
    ``trainer.max_steps`` when that is set."""
    count = getattr(pl_module, "fit_optimizer_steps", None)
    if count is not None:
        steps = count()
        return None if steps is None else int(steps)
    return trainer.max_steps if trainer.max_steps is not None and trainer.max_steps >= 0 else None


def has_ema(checkpoint: dict[str, Any]) -> bool:
    """Whether the checkpoint was written with an EMA (its ``state_dict`` is then the average, or the raw weights
    when the EMA had no update yet: see ``ema_updated``)."""
    return isinstance(checkpoint.get(RAW_STATE), dict)


def ema_updated(checkpoint: dict[str, Any]) -> bool:
    """Whether the EMA of a checkpoint written with one had an update (``n_averaged`` > 0); True when the
    checkpoint does not say."""
    count = (checkpoint.get(AVERAGING_STATE) or {}).get("n_averaged")
    return count is None or int(count) > 0


def checkpoint_weights(checkpoint: dict[str, Any], eval_weights: str) -> tuple[dict[str, torch.Tensor], str]:
    """The module state of a training checkpoint that ``eval_weights`` asks for, and which weights it is
    (``ema`` or ``raw``): ``ema`` gives the average when the run kept one and the only weights there are
    otherwise (``raw``), so the default works for every checkpoint. A checkpoint written before the EMA's first
    update (``update_starting_at_step`` not reached) has no average: ``ema`` then gives its raw weights, as
    ``raw``, and says so in the log (older such checkpoints hold the initial weights as ``state_dict``)."""
    if eval_weights not in EVAL_WEIGHTS:
        raise ValueError(f"eval_weights must be one of {list(EVAL_WEIGHTS)}; got {eval_weights!r}")
    if not has_ema(checkpoint):
        return checkpoint["state_dict"], "raw"
    if eval_weights == "raw":
        return checkpoint[RAW_STATE], "raw"
    if not ema_updated(checkpoint):
        log.warning(
            "eval_weights=ema: the checkpoint was written before the EMA's first update (update_starting_at_step "
            "not reached), so it has no average: using its raw weights (evaluated_weights: raw)"
        )
        return checkpoint[RAW_STATE], "raw"
    return checkpoint["state_dict"], "ema"
