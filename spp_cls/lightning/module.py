"""The Lightning module: cross-entropy training of an SPP-net model, top-1/top-5 error on every split.

Validation uses the center-crop view (the loader's transform); ``test`` runs whatever test protocol is
attached with ``set_protocol`` and is what ``evaluate.py`` reports.

The modern recipe's switches (``optim.*``, docs/recipe.md) act in ``training_step``: MixUp/CutMix of the normalised
batch on the device (``mixing.py``), label smoothing of the training cross-entropy (validation reports the plain
one, comparable across recipes). With mixed targets the training top-1/top-5 errors count against each image's
dominant label (the larger weight of its mix), so they are not comparable with those of an unmixed run.

A step must not wait for the device (the host queues the next steps while it computes): the running metrics
never read a device value back (``nan_strategy="disable"``), each epoch metric is handed to Lightning once an
epoch (every call moves it to the device again, host time of the order of a millisecond), and the step loss is
logged only on the steps whose metrics Lightning writes to the loggers.
"""

from __future__ import annotations

import math
import time
from typing import Any, Optional, Sequence, cast

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.utilities.types import OptimizerLRSchedulerConfig
from torch import nn
from torchmetrics import MeanMetric, Metric, SumMetric

from spp_cls.evaluation.metrics import TopKError
from spp_cls.evaluation.protocols import TestProtocol
from spp_cls.lightning.datamodule import adopt_legacy_state
from spp_cls.lightning.mixing import build_mixer, dominant_label
from spp_cls.lightning.optim import build_optimization
from spp_cls.models import Classifier, create_classifier

MONITOR = "val/top1_err"
# model settings that say how the network runs, not what it is (create_classifier does not take them)
RUNTIME_KEYS = ("channels_last", "compile", "compile_dynamic", "compile_mode", "compile_backend")
# keys a model config gained after checkpoints were written without them: the value that reproduces those
# checkpoints' networks (an LRN with Caffe's alpha on normalised input; Table 1's pool5 window at every size)
LEGACY_MODEL_KEYS = {"lrn_input_scale": 1.0, "baseline_pool": "paper_window"}
# the submodules the test protocols call directly (see _apply_runtime)
PROTOCOL_PARTS = ("features", "pool", "pre_logits", "fc8")


class SppClassifier(pl.LightningModule):
    """Wraps an ``SppNet`` built from the ``model`` settings of a run.

    Args:
        model: keyword arguments of ``create_classifier`` except ``num_classes`` and ``input_size``, and the
            runtime switches ``channels_last`` (weights and inputs in channels-last memory format) and
            ``compile`` / ``compile_dynamic`` / ``compile_mode`` / ``compile_backend`` (``torch.compile`` of the
            network in place, with those ``dynamic``, ``mode`` and ``backend`` arguments).
        optim: the run's ``optim`` settings (see ``lightning/optim.py``).
        num_classes: number of classes of the data set.
        input_size: training crop size (the size a no-SPP model is built for).
        lr: the learning rate after batch-size scaling.
        run_config: the whole resolved run config, kept in every checkpoint so evaluate.py can rebuild the
            run's model and data without the run directory.
        seed: the run's seed (MixUp/CutMix draw each batch's mix from it and the batch's place in the run).
    """

    def __init__(
        self,
        model: dict[str, Any],
        optim: dict[str, Any],
        num_classes: int,
        input_size: int,
        lr: float,
        run_config: Optional[dict[str, Any]] = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.runtime = {key: model[key] for key in RUNTIME_KEYS if key in model}
        network = {key: value for key, value in model.items() if key not in RUNTIME_KEYS}
        network = {**LEGACY_MODEL_KEYS, **network}
        self.model = create_classifier(num_classes=num_classes, input_size=input_size, **network)
        self.protocol: Optional[TestProtocol] = None
        self.ensemble = nn.ModuleList()
        self.kept_scores: Optional[list[tuple[torch.Tensor, ...]]] = None
        self.test_started_at: Optional[float] = None  # time.monotonic() when the last test epoch started
        self.test_views = SumMetric(nan_strategy="disable")  # "disable": no NaN check, which reads the device
        self.train_loss = MeanMetric(nan_strategy="disable")  # epoch means as metrics: synced, checkpointed
        self.val_loss = MeanMetric(nan_strategy="disable")
        for split in ("train", "val", "test"):
            setattr(self, f"{split}_top1", TopKError(num_classes, 1))
            setattr(self, f"{split}_top5", TopKError(num_classes, 5))
            setattr(self, f"{split}_images", SumMetric(nan_strategy="disable"))
            setattr(self, f"{split}_skipped", SumMetric(nan_strategy="disable"))
        self._logged: set[str] = set()  # epoch metrics handed to Lightning in the current epoch
        self.mixer = build_mixer(num_classes, optim)
        self.label_smoothing = float(optim.get("label_smoothing", 0.0))

    def set_protocol(
        self, protocol: TestProtocol, ensemble: Sequence[Classifier] = (), keep_scores: bool = False
    ) -> None:
        """Use ``protocol`` for ``trainer.test`` (its view must be the one the test loader applies).

        ``ensemble``: further models whose scores are averaged with this one's (the paper's multi-model
        entries). ``keep_scores``: keep this process's per-image scores and targets in ``kept_scores``.
        """
        for model in [self.model, *ensemble]:
            protocol.check_model(model, f"{model.arch.name}{'_spp' if model.spp else ''}")
        self.protocol = protocol
        self.ensemble = nn.ModuleList(ensemble)
        self.kept_scores = [] if keep_scores else None

    def configure_model(self) -> None:
        """Apply the runtime switches to the network and the ensemble members (Lightning calls this before every
        fit/validate/test; repeating is harmless). Not at construction, so that exporting or loading a checkpoint
        gets the plain network."""
        for model in [self.model, *self.ensemble]:
            self._apply_runtime(model)

    def _apply_runtime(self, model: nn.Module) -> None:
        """channels-last weights; ``torch.compile`` in place (the state_dict keys stay those of the plain network).

        ``nn.Module.compile`` compiles only the module's own call, and the full-image protocols never make that
        call: they run ``features``, ``pool``, ``pre_logits`` and ``fc8`` one by one (``features`` on whole
        images, fc6-fc8 on vectors pooled from the maps). Those submodules are compiled in place too. Inside the
        compiled forward (training, validation, the crop protocols) dynamo traces through them into the one
        graph it had before; called on their own, each runs its own compiled graph.
        """
        if self.runtime.get("channels_last"):
            model.to(memory_format=torch.channels_last)
        if self.runtime.get("compile"):
            options = dict(
                dynamic=self.runtime.get("compile_dynamic", True),
                mode=self.runtime.get("compile_mode"),
                backend=self.runtime.get("compile_backend", "inductor"),
            )
            model.compile(**options)
            for name in PROTOCOL_PARTS:
                part = getattr(model, name, None)
                if isinstance(part, nn.Module):
                    part.compile(**options)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _images(self, batch: dict[str, Any]) -> torch.Tensor:
        """The batch's images in the memory format of the weights (the normaliser hands over NCHW)."""
        images = batch["image"]
        return images.contiguous(memory_format=torch.channels_last) if self.runtime.get("channels_last") else images

    def _log_epoch(self, name: str, value: Any, **kwargs: Any) -> None:
        """Hand an epoch-level metric (updated every step) to Lightning once an epoch; it computes, logs and
        resets the metric at the epoch's end."""
        if name not in self._logged:
            self._logged.add(name)
            self.log(name, value, on_step=False, on_epoch=True, **kwargs)

    def _logging_step(self) -> bool:
        """Whether Lightning writes step metrics to the loggers after this training step (its rule: every
        ``log_every_n_steps`` optimizer steps; every step in a fast dev run)."""
        trainer = self.trainer
        every = trainer.log_every_n_steps  # type: ignore[attr-defined]  # set by Lightning's logger connector
        fast_dev_run = trainer.fast_dev_run  # type: ignore[attr-defined]  # set by Lightning's setup
        return bool(fast_dev_run) or (every > 0 and (trainer.global_step + 1) % every == 0)

    def on_train_start(self) -> None:
        self._logged.clear()  # a run resumed inside an epoch starts there, without on_train_epoch_start

    def on_train_epoch_start(self) -> None:
        self._logged.clear()

    def on_validation_epoch_start(self) -> None:
        self._logged.clear()

    def on_test_epoch_start(self) -> None:
        self._logged.clear()
        # after the test loader exists (its sampler may have read every file's header to order the images): the
        # protocols' images/s count the testing, not the setting up
        self.test_started_at = time.monotonic()

    def _log_split(
        self, split: str, scores: torch.Tensor, batch: dict[str, Any], target: Optional[torch.Tensor] = None
    ) -> None:
        """Update and log the split's error metrics and sample counts (epoch-level, synced over devices);
        ``target``: the labels to count against, if not the batch's own (mixed batches: the dominant labels)."""
        target = batch["target"] if target is None else target
        size = target.numel()
        metrics = {
            "top1_err": (getattr(self, f"{split}_top1"), (scores, target)),
            "top5_err": (getattr(self, f"{split}_top5"), (scores, target)),
            "images": (getattr(self, f"{split}_images"), (torch.tensor(float(target.numel())),)),
        }
        for name, (metric, args) in metrics.items():
            metric.update(*args)
            self._log_epoch(f"{split}/{name}", metric, prog_bar=name == "top1_err", batch_size=size)

    def _log_skipped(self, split: str, batch: dict[str, Any]) -> None:
        metric = getattr(self, f"{split}_skipped")
        metric.update(batch["skipped"].float())
        self._log_epoch(f"{split}/skipped", metric, batch_size=1)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Optional[torch.Tensor]:
        self._log_skipped("train", batch)
        if batch["image"] is None:  # every image of this process's batch was unreadable
            return self._empty_batch_loss()
        images, target = self._images(batch), batch["target"]
        if self.mixer is not None:
            # (epoch, batch of it): Lightning restores both exactly in a run resumed mid-epoch (its progress counters,
            # which training_position reads, are rolled back to the last completed batch until the next one ends)
            seed = int(self.hparams.get("seed", 0))
            images, target = self.mixer(images, target, seed, self.current_epoch, batch_idx, self.global_rank)
        logits = self.model(images)
        loss = F.cross_entropy(logits, target, label_smoothing=self.label_smoothing)
        self._log_step_loss(loss.detach() * logits.shape[0], logits.shape[0])
        self.train_loss.update(loss.detach(), weight=logits.shape[0])
        self._log_epoch("train/loss_epoch", self.train_loss, batch_size=logits.shape[0])
        # one size per epoch (multi-size training): the epoch mean is that size
        self._log_epoch("train/input_size", float(batch["image"].shape[-1]), batch_size=1)
        self._log_split("train", logits.detach(), batch, dominant_label(target) if target.ndim == 2 else None)
        return loss

    def _log_step_loss(self, loss_sum: torch.Tensor, count: int) -> None:
        """Log the step's mean loss over all processes' images, on the steps Lightning writes to the loggers.

        The same steps on every process, images or not: the sum is all-reduced (a collective) there and only there.
        """
        if not self._logging_step():
            return
        totals = torch.stack([loss_sum.float(), loss_sum.new_tensor(float(count), dtype=torch.float32)])
        totals = self.trainer.strategy.reduce(totals, reduce_op="sum")
        self.log(
            "train/loss_step",
            totals[0] / totals[1].clamp(min=1.0),
            on_step=True,
            on_epoch=False,
            prog_bar=True,
            batch_size=max(count, 1),
        )

    def _empty_batch_loss(self) -> Optional[torch.Tensor]:
        """What a training step returns when this process has no image to train on.

        One process: None, and Lightning skips the optimizer step. Under DDP every process must take part in
        the step's collectives: the step-loss sum of a logging step (this process adds nothing to it), the epoch
        metrics registered in the same order as the others', and the gradient all-reduce, to which this process
        contributes a zero loss that reaches every parameter (zero gradients: the step's gradient is the others'
        sum over the world size, as if these images had zero loss); the optimizer steps on every process alike."""
        if self.trainer.world_size == 1:
            return None
        zero = torch.stack([p.sum() for p in self.model.parameters()]).sum() * 0.0
        self._log_step_loss(zero.detach(), 0)
        self._log_epoch("train/loss_epoch", self.train_loss, batch_size=1)
        for name in ("top1_err", "top5_err", "images"):
            self._log_epoch(
                f"train/{name}", getattr(self, f"train_{name.split('_')[0]}"), prog_bar=name == "top1_err", batch_size=1
            )
        return zero

    def _running_train_metrics(self) -> dict[str, Metric]:
        """The metrics that sum up a training epoch batch by batch."""
        names = ("train_loss", "train_top1", "train_top5", "train_images", "train_skipped")
        return {name: getattr(self, name) for name in names}

    def epoch_state(self) -> dict[str, Any]:
        """The training epoch's sums so far (on CPU), for a checkpoint taken inside the epoch."""
        # these metrics' states are tensors (no list states)
        return {
            name: {k: cast(torch.Tensor, v).detach().cpu() for k, v in metric.metric_state.items()}
            for name, metric in self._running_train_metrics().items()
        }

    def load_epoch_state(self, state: dict[str, Any]) -> None:
        """Continue the epoch's sums from a checkpoint (the metrics have just been reset, so merging restores them)."""
        for name, metric in self._running_train_metrics().items():
            metric.reset()
            metric.merge_state({k: v.to(metric.device) for k, v in state[name].items()})

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._log_skipped("val", batch)
        if batch["image"] is None:
            return
        logits = self.model(self._images(batch))
        loss = F.cross_entropy(logits, batch["target"])
        self.val_loss.update(loss, weight=logits.shape[0])
        self._log_epoch("val/loss", self.val_loss, batch_size=logits.shape[0])
        self._log_split("val", logits, batch)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        if self.protocol is None:
            raise RuntimeError("attach a test protocol with set_protocol() before trainer.test()")
        self._log_skipped("test", batch)
        if batch["image"] is None:
            return
        results = [self.protocol.scores(model, batch["image"]) for model in [self.model, *self.ensemble]]
        scores = torch.stack([r[0] for r in results]).mean(0)  # an ensemble averages its members' scores
        self.test_views.update(results[0][1].sum())
        self._log_epoch("test/views", self.test_views, batch_size=1)
        if self.kept_scores is not None:
            kept = (scores, batch["target"]) + ((batch["index"],) if batch.get("index") is not None else ())
            self.kept_scores.append(tuple(t.detach().cpu() for t in kept))
        self._log_split("test", scores, batch)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Lightning restores the module before the data module, from the same dict: a data module state saved
        under the data module's earlier name is moved to where Lightning looks for it."""
        adopt_legacy_state(checkpoint)

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None) -> None:
        """The optimizer step, then the per-step schedule (cosine) at once: Lightning steps it only after
        ``on_train_batch_end``, where mid-epoch resume checkpoints are written, so a run resumed there would be one
        schedule step behind an uninterrupted one."""
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        for config in self.trainer.lr_scheduler_configs:
            if config.interval == "step":
                config.scheduler.step()  # type: ignore[call-arg]  # not a plateau schedule (interval "epoch")

    def lr_scheduler_step(self, scheduler: Any, metric: Any) -> None:
        """Lightning's epoch-interval schedules as usual; the per-step ones are stepped in ``optimizer_step``."""
        if any(c.scheduler is scheduler and c.interval == "step" for c in self.trainer.lr_scheduler_configs):
            return
        super().lr_scheduler_step(scheduler, metric)

    def optimizer_steps_per_epoch(self) -> float:
        """ceil(training batches per epoch / accumulation), the batches limited by ``limit_train_batches`` as
        Lightning limits them. Counted from a loader of the data module, not with Lightning's
        ``estimated_stepping_batches``: that sets up the training loader before a resumed run restores the loader's
        position, and Lightning then keeps that loader and never applies the position. Without a data module (a
        loader given to ``fit``), Lightning's estimate spread over ``max_epochs``."""
        trainer = self.trainer
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is None:
            return trainer.estimated_stepping_batches / max(1, trainer.max_epochs or 1)
        batches = len(datamodule.train_dataloader())
        limit = trainer.limit_train_batches
        if isinstance(limit, int):
            batches = min(batches, limit)
        elif limit is not None:
            batches = int(batches * limit)
        return math.ceil(batches / trainer.accumulate_grad_batches)

    def fit_optimizer_steps(self) -> Optional[float]:
        """The optimizer steps the fit will take, or None when unknown: ``max_epochs`` x the steps of an epoch,
        cut to ``trainer.max_steps`` when that is set (``max_epochs=-1``: ``max_steps`` alone), as the fit stops."""
        trainer = self.trainer
        by_epochs = None
        if (trainer.max_epochs or 0) >= 1:
            by_epochs = trainer.max_epochs * self.optimizer_steps_per_epoch()  # type: ignore[operator]
        by_steps = trainer.max_steps if trainer.max_steps is not None and trainer.max_steps >= 0 else None
        known = [n for n in (by_epochs, by_steps) if n is not None and math.isfinite(n)]
        return min(known) if known else None

    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        optim, trainer = self.hparams["optim"], self._trainer  # no trainer: a test building the optimizers
        cosine = optim.get("scheduler") == "cosine" and trainer is not None
        return build_optimization(
            self.model,
            optim,
            self.hparams["lr"],
            MONITOR,
            # the optimizer steps of the fit and of an epoch (accumulation, batch and step limits counted); only
            # cosine needs them
            total_steps=self.fit_optimizer_steps() if cosine else None,
            steps_per_epoch=self.optimizer_steps_per_epoch() if cosine else None,
        )
