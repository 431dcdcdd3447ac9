"""`checkpoints/last.ckpt`: the one checkpoint a run keeps, replaced atomically after every epoch."""

from __future__ import annotations

import os
from pathlib import Path
from weakref import proxy

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


class LastCheckpoint(ModelCheckpoint):
    """Writes the full training state to `last.ckpt` every `every_n_epochs` epochs (and every
    `every_n_train_steps` batches when set), through a temporary file renamed into place, so a crash
    or kill while writing leaves the previous complete checkpoint."""

    def __init__(self, dirpath: str, every_n_epochs: int = 1, every_n_train_steps: int | None = None):
        super().__init__(
            dirpath=dirpath,
            filename="last",
            monitor=None,
            save_top_k=1,
            save_last=False,
            every_n_epochs=every_n_epochs,
            every_n_train_steps=every_n_train_steps,
            enable_version_counter=False,
        )

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        target = Path(filepath)
        partial = target.with_name(f".{target.name}.partial")
        trainer.save_checkpoint(partial, self.save_weights_only)
        if trainer.is_global_zero:
            os.replace(partial, target)
        trainer.strategy.barrier("last_checkpoint")
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))
