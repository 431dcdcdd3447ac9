"""The divergence guard: stop (or roll back) when a loss or a weight stops being finite."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn

from handwriting_gan.errors import ConfigError, DivergenceError


class DivergenceGuard(L.Callback):
    """Checks the game's losses every `check_every_n_steps` batches and every weight at each epoch end
    (before the epoch's checkpoint is written, so `last.ckpt` only ever holds finite weights).

    On a non-finite value it raises DivergenceError naming the epoch and batch, leaving the last good
    checkpoint in place. With `rollback=true` it instead reloads the weights and optimizer states of
    `checkpoint` and multiplies both learning rates by `lr_factor`, at most `max_rollbacks` times.
    """

    def __init__(
        self,
        checkpoint: str,
        check_every_n_steps: int = 1,
        rollback: bool = False,
        lr_factor: float = 0.5,
        max_rollbacks: int = 3,
    ) -> None:
        if int(check_every_n_steps) <= 0:
            raise ConfigError(
                f"callbacks.divergence.check_every_n_steps={check_every_n_steps} must be a positive integer."
            )
        if not 0.0 < float(lr_factor) < 1.0:
            raise ConfigError(f"callbacks.divergence.lr_factor={lr_factor} must be in (0, 1).")
        self.checkpoint = Path(checkpoint)
        self.check_every_n_steps = int(check_every_n_steps)
        self.rollback = rollback
        self.lr_factor = float(lr_factor)
        self.max_rollbacks = int(max_rollbacks)
        self.rollbacks = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if (batch_idx + 1) % self.check_every_n_steps:
            return
        losses = pl_module.step_losses
        if not torch.isfinite(losses).all():
            d_loss, g_loss = losses.tolist()
            self._diverged(trainer, pl_module, f"loss (d_loss={d_loss}, g_loss={g_loss})", batch_idx)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        bad = [name for name, p in pl_module.named_parameters() if not torch.isfinite(p).all()]
        if bad:
            self._diverged(trainer, pl_module, f"weights ({', '.join(bad[:3])})", "end")

    def _diverged(self, trainer: L.Trainer, pl_module: L.LightningModule, what: str, batch) -> None:
        where = f"epoch {trainer.current_epoch}, batch {batch}"
        if self.rollback and self.rollbacks < self.max_rollbacks and self.checkpoint.is_file():
            self._roll_back(trainer, pl_module)
            rank_zero_warn(
                f"Non-finite {what} at {where}: rolled back to {self.checkpoint} and lowered the learning "
                f"rate to {pl_module.learning_rate:.3g} (rollback {self.rollbacks} of {self.max_rollbacks})."
            )
            return
        if self.checkpoint.is_file():
            kept = f"The last good checkpoint is kept at {self.checkpoint}"
        else:
            kept = "No checkpoint was written before it (it diverged in the first epoch)"
        raise DivergenceError(
            f"training diverged at {where}: non-finite {what}. {kept}. Lower optim.lr (now "
            f"{pl_module.learning_rate:.3g}) and resume, or set callbacks.divergence.rollback=true to roll "
            f"back automatically."
        )

    def _roll_back(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        state = torch.load(self.checkpoint, map_location=pl_module.device, weights_only=True)
        pl_module.load_state_dict(state["state_dict"])
        for optimizer, optimizer_state in zip(trainer.optimizers, state["optimizer_states"], strict=True):
            optimizer.load_state_dict(optimizer_state)
        pl_module.scale_learning_rate(self.lr_factor)
        self.rollbacks += 1
