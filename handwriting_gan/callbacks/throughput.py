"""Training speed in steady state: images per second over each epoch, after a warm-up."""

from __future__ import annotations

import time

import lightning as L
import torch


class Throughput(L.Callback):
    """Logs `perf/images_per_sec` per epoch, timed from batch `warmup_steps` to the epoch's last.

    The window covers everything the loop does per batch (data, hooks, logging, optimizer steps)
    and nothing done once per epoch (grids, figures, checkpoints).
    """

    def __init__(self, warmup_steps: int = 10) -> None:
        self.warmup_steps = warmup_steps
        self.images_per_sec: float | None = None
        self._start: float | None = None
        self._images = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start, self._images = None, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if batch_idx + 1 == self.warmup_steps:
            _synchronize(pl_module)  # GPU work is queued: time what the device has finished
            self._start = time.perf_counter()
        elif self._start is not None:
            self._images += batch[1].shape[-1]  # labels: (B,), or (2, B) for pairs of images

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._start is None or self._images == 0:
            return
        _synchronize(pl_module)
        self.images_per_sec = self._images / (time.perf_counter() - self._start)
        pl_module.log("perf/images_per_sec", self.images_per_sec, on_epoch=True)


def _synchronize(pl_module: L.LightningModule) -> None:
    if pl_module.device.type == "cuda":
        torch.cuda.synchronize(pl_module.device)
