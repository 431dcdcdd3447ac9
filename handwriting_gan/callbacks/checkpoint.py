"""`checkpoints/last.ckpt`: the one checkpoint a run keeps, replaced atomically after every epoch (and
when a run is stopped by a signal, callbacks.preemption), and the checks a checkpoint passes before a
run resumes from it."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint

from handwriting_gan import __version__
from handwriting_gan.errors import CheckpointError, ConfigError


class LastCheckpoint(Checkpoint):
    """Writes the full training state to `last.ckpt` every `every_n_epochs` epochs (and every
    `every_n_batches` batches when set), through a temporary file renamed into place, so a crash
    or kill while writing leaves the previous complete checkpoint.

    A Lightning `Checkpoint`, the class the trainer knows checkpoint callbacks by (so it adds no
    ModelCheckpoint of its own), on public hooks only: with one file and no monitored metric none of
    ModelCheckpoint's top-k bookkeeping applies, and replacing its write would take its private methods."""

    def __init__(
        self, dirpath: str, every_n_epochs: int = 1, every_n_batches: int | None = None, d_steps: int = 1
    ):
        if isinstance(every_n_epochs, bool) or int(every_n_epochs) <= 0:
            raise ConfigError(
                f"callbacks.checkpoint.every_n_epochs={every_n_epochs} must be a positive integer "
                f"(1: every epoch)."
            )
        if every_n_batches is not None and (isinstance(every_n_batches, bool) or int(every_n_batches) <= 0):
            raise ConfigError(
                f"callbacks.checkpoint.every_n_batches={every_n_batches} must be a positive integer or null."
            )
        self.path = Path(dirpath) / "last.ckpt"
        self.every_n_epochs = int(every_n_epochs)
        # Lightning counts optimizer steps: each batch makes d_steps discriminator and one generator step.
        self.every_n_steps = int(every_n_batches) * (d_steps + 1) if every_n_batches else None
        self.saved_at_step = 0  # no step taken: nothing to save

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx):
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            self._save_once(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self._save_once(trainer)

    def _save_once(self, trainer: L.Trainer) -> None:
        # Once per step: an epoch's last batch can be due for both triggers. A fast_dev_run writes none,
        # as with Lightning's own checkpoints.
        if trainer.global_step != self.saved_at_step and not trainer.fast_dev_run:
            self.save_now(trainer)

    def save_now(self, trainer: L.Trainer) -> Path:
        """Replace `last.ckpt` with the current training state, outside the epoch and batch triggers."""
        partial = self.path.with_name(f".{self.path.name}.partial")
        try:
            trainer.save_checkpoint(partial, weights_only=False)  # the full state: resume needs it
            if trainer.is_global_zero:
                os.replace(partial, self.path)
        finally:
            # A failed write (disk full) leaves the previous last.ckpt and no half-written file.
            if trainer.is_global_zero:
                partial.unlink(missing_ok=True)
        trainer.strategy.barrier("last_checkpoint")
        self.saved_at_step = trainer.global_step
        return self.path

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        checkpoint["handwriting_gan"] = {"version": __version__, "checkpoint_format": CHECKPOINT_FORMAT}


CHECKPOINT_FORMAT = 1


def read_checkpoint(path: str | Path, module: L.LightningModule) -> dict:
    """Load a checkpoint to resume `module` from, or raise CheckpointError saying what is wrong with it:
    unreadable or truncated, written by another version of the checkpoint format, or for another model
    (parameter names or shapes that differ from what the config builds)."""
    path = Path(path)
    checkpoint = load_checkpoint(path)
    expected = {name: tuple(t.shape) for name, t in module.state_dict().items()}
    found = {name: tuple(t.shape) for name, t in checkpoint["state_dict"].items()}
    if expected != found:
        missing = sorted(set(expected) - set(found))
        unexpected = sorted(set(found) - set(expected))
        reshaped = sorted(n for n in set(expected) & set(found) if expected[n] != found[n])
        details = "; ".join(
            part
            for part in (
                f"missing {missing[:3]}" if missing else "",
                f"unexpected {unexpected[:3]}" if unexpected else "",
                ", ".join(f"{n} is {list(found[n])} there, {list(expected[n])} here" for n in reshaped[:3]),
            )
            if part
        )
        raise CheckpointError(
            f"{path} was written for another model than this config builds ({details}). Resume with "
            f"the run's own model settings (drop model overrides from the resume command)."
        )
    return checkpoint


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint written by LastCheckpoint (on the CPU), or CheckpointError when it is unreadable,
    truncated or of another checkpoint format."""
    path = Path(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{path} cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0][:160]}); it is "
            f"truncated or not a checkpoint. A run keeps only complete checkpoints, so this file was "
            f"changed outside handwriting_gan: restore it or start a new run."
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path} is not a Lightning checkpoint (it has no state_dict).")
    written = checkpoint.get("handwriting_gan", {}).get("checkpoint_format")
    if written != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} has checkpoint format {written}, and this handwriting_gan ({__version__}) reads "
            f"format {CHECKPOINT_FORMAT}; resume it with the version that wrote it."
        )
    return checkpoint
