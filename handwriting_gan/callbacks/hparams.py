"""The run's hyperparameters beside its final metrics in TensorBoard's HParams dashboard: one row per
run, so the runs of a sweep can be sorted by FD, floor and losses there."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger


class HParamsSummary(L.Callback):
    """When training ends, logs the hyperparameters the run recorded at its start (its composed config,
    `tensorboard/hparams.yaml`, less the groups in `exclude`) with every epoch-level metric of its last
    epoch (`quality/*`, `train/*_epoch`), each under `final/<name>`, through Lightning's
    `TensorBoardLogger.log_hyperparams(params, metrics)`.

    The `final/` names keep these one-point series apart from the training curves. A run stopped before
    it finished (a signal, an error) writes no row; its resume does."""

    def __init__(self, exclude: Sequence[str] = ("paths", "logger", "callbacks", "hydra")) -> None:
        self.exclude = frozenset(exclude)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        logger = next((x for x in trainer.loggers if isinstance(x, TensorBoardLogger)), None)
        if logger is None or not trainer.is_global_zero:
            return
        metrics = {
            f"final/{name}": float(value)
            for name, value in sorted(trainer.callback_metrics.items())
            if value.numel() == 1 and not name.endswith("_step")
        }
        if not metrics:  # nothing trained (a resume of a finished run): no row to add
            return
        params = {key: value for key, value in logger.hparams.items() if key not in self.exclude}
        # The step of the last epoch's means (Lightning logs epoch metrics one below its batch counter).
        step = max(0, trainer.fit_loop.epoch_loop._batches_that_stepped - 1)
        logger.log_hyperparams(params, metrics, step=step)
