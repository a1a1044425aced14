"""The Lightning module: cross-entropy training of an SPP-net model, top-1/top-5 error on every split.

Validation uses the center-crop view (the loader's transform); ``test`` runs whatever test protocol is
attached with ``set_protocol`` and is what ``evaluate.py`` reports.
"""

from __future__ import annotations

from typing import Any, Optional

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torchmetrics import SumMetric

from spp_cls.evaluation.metrics import TopKError
from spp_cls.evaluation.protocols import TestProtocol
from spp_cls.lightning.optim import build_optimization
from spp_cls.models import create_classifier

MONITOR = "val/top1_err"


class SppClassifier(pl.LightningModule):
    """Wraps an ``SppNet`` built from the ``model`` settings of a run.

    Args:
        model: keyword arguments of ``create_classifier`` except ``num_classes`` and ``input_size``.
        optim: the run's ``optim`` settings (see ``lightning/optim.py``).
        num_classes: number of classes of the data set.
        input_size: training crop size (the size a no-SPP model is built for).
        lr: the learning rate after batch-size scaling.
        run_config: the whole resolved run config, kept in every checkpoint so evaluate.py can rebuild the
            run's model and data without the run directory.
    """

    def __init__(
        self,
        model: dict[str, Any],
        optim: dict[str, Any],
        num_classes: int,
        input_size: int,
        lr: float,
        run_config: Optional[dict[str, Any]] = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = create_classifier(num_classes=num_classes, input_size=input_size, **model)
        self.protocol: Optional[TestProtocol] = None
        for split in ("train", "val", "test"):
            setattr(self, f"{split}_top1", TopKError(num_classes, 1))
            setattr(self, f"{split}_top5", TopKError(num_classes, 5))
            setattr(self, f"{split}_images", SumMetric())
            setattr(self, f"{split}_skipped", SumMetric())

    def set_protocol(self, protocol: TestProtocol) -> None:
        """Use ``protocol`` for ``trainer.test`` (its transform must be the one the test loader applies)."""
        self.protocol = protocol

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _log_split(self, split: str, scores: torch.Tensor, batch: dict[str, Any]) -> None:
        """Update and log the split's error metrics and sample counts (epoch-level, synced over devices)."""
        target = batch["target"]
        size = target.numel()
        metrics = {
            "top1_err": (getattr(self, f"{split}_top1"), (scores, target)),
            "top5_err": (getattr(self, f"{split}_top5"), (scores, target)),
            "images": (getattr(self, f"{split}_images"), (torch.tensor(float(target.numel())),)),
        }
        for name, (metric, args) in metrics.items():
            metric.update(*args)
            self.log(f"{split}/{name}", metric, on_step=False, on_epoch=True, prog_bar=name == "top1_err", batch_size=size)

    def _log_skipped(self, split: str, batch: dict[str, Any]) -> None:
        metric = getattr(self, f"{split}_skipped")
        metric.update(batch["skipped"].float())
        self.log(f"{split}/skipped", metric, on_step=False, on_epoch=True, batch_size=1)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Optional[torch.Tensor]:
        self._log_skipped("train", batch)
        if batch["image"] is None:
            return None  # every image of the batch was unreadable; Lightning skips the step
        logits = self.model(batch["image"])
        loss = F.cross_entropy(logits, batch["target"])
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=logits.shape[0])
        # one size per epoch (multi-size training): the epoch mean is that size
        self.log("train/input_size", float(batch["image"].shape[-1]), on_step=False, on_epoch=True, batch_size=1)
        self._log_split("train", logits.detach(), batch)
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._log_skipped("val", batch)
        if batch["image"] is None:
            return
        logits = self.model(batch["image"])
        loss = F.cross_entropy(logits, batch["target"])
        self.log("val/loss", loss, on_step=False, on_epoch=True, batch_size=logits.shape[0])
        self._log_split("val", logits, batch)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        if self.protocol is None:
            raise RuntimeError("attach a test protocol with set_protocol() before trainer.test()")
        self._log_skipped("test", batch)
        if batch["image"] is None:
            return
        self._log_split("test", self.protocol.scores(self.model, batch["image"]), batch)

    def configure_optimizers(self) -> dict[str, Any]:
        return build_optimization(self.model.parameters(), self.hparams.optim, self.hparams.lr, MONITOR)
