"""Preemption: on SIGTERM or SIGUSR1 (a cluster's notice that it is about to stop the job) the run
finishes the batch in progress, writes `checkpoints/last.ckpt` and exits with status 0, so that
`python -m handwriting_gan resume=<run folder>` continues from that batch (from the last epoch end
where the training data cannot resume inside an epoch)."""

from __future__ import annotations

import os
import signal
import threading

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException

from handwriting_gan.callbacks.checkpoint import LastCheckpoint
from handwriting_gan.shell import say


class Preemption(L.Callback):
    """Lightning already turns SIGTERM into a stop at the next batch boundary (`trainer.received_sigterm`
    raises SIGTERMException there, which reaches `on_exception`); this callback gives SIGUSR1 the same
    meaning and saves the checkpoint through the run's LastCheckpoint.

    Installing a SIGUSR1 handler before the trainer starts also keeps Lightning's SLURM auto-requeue
    (an `hpc_ckpt_*.ckpt` and `scontrol requeue` of the same command line) from taking the signal:
    a run continues only through `resume=`, which checks the checkpoint against the config."""

    def __init__(self, continue_with: str | None = None) -> None:
        self._previous_sigusr1: signal.Handlers | object | None = None
        #: What the stop message tells a person to run; None: the training command's `resume=`. A
        #: command that trains a run of its own (expand, the pool study) says to run itself again.
        self.continue_with = continue_with

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit" and threading.current_thread() is threading.main_thread():
            self._previous_sigusr1 = signal.signal(signal.SIGUSR1, _deliver_as_sigterm)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._restore_sigusr1()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._restore_sigusr1()
        # Only this exception is raised between batches; any other (Ctrl+C included) can leave a batch
        # half trained, which must not become the checkpoint a run resumes from.
        if not isinstance(exception, SIGTERMException):
            return
        checkpoint = next((c for c in trainer.checkpoint_callbacks if isinstance(c, LastCheckpoint)), None)
        done = trainer.fit_loop.epoch_loop.batch_progress.current.completed
        if done >= trainer.num_training_batches:  # the epoch had ended, and current_epoch moved on
            where = f"the end of epoch {trainer.current_epoch}"
        else:
            where = f"epoch {trainer.current_epoch + 1}, batch {done} of {trainer.num_training_batches}"
        if checkpoint is None:
            if trainer.is_global_zero:
                say(f"Stopped by a signal at {where}; no checkpoint written (callbacks.checkpoint is off).")
            return
        resume = self.continue_with or (
            f"Continue with: python -m handwriting_gan resume={checkpoint.path.parent.parent}"
        )
        if done < trainer.num_training_batches and not _resumable_inside_epochs(trainer):
            if not trainer.is_global_zero:
                return
            if checkpoint.path.is_file():
                kept = f"so {checkpoint.path} keeps the last epoch end. {resume}"
            else:
                kept = "and no epoch had ended: start the run again."
            say(
                f"Stopped by a signal at {where}. The training data cannot continue inside an epoch (its "
                f"loader has no state_dict), {kept}"
            )
            return
        path = checkpoint.save_now(trainer)
        if trainer.is_global_zero:
            say(f"Stopped by a signal at {where}; saved {path}. {resume}")

    def _restore_sigusr1(self) -> None:
        if self._previous_sigusr1 is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGUSR1, self._previous_sigusr1)
            self._previous_sigusr1 = None


def _resumable_inside_epochs(trainer: L.Trainer) -> bool:
    """Lightning puts the position of a training loader in checkpoints only if the loader has
    `state_dict`/`load_state_dict`; otherwise a resumed run starts the epoch's data from its first batch."""
    loaders = trainer.train_dataloader
    loaders = list(loaders.values()) if isinstance(loaders, dict) else loaders
    loaders = loaders if isinstance(loaders, list | tuple) else [loaders]
    return all(hasattr(x, "state_dict") and hasattr(x, "load_state_dict") for x in loaders)


def _deliver_as_sigterm(signum: int, frame) -> None:
    # Lightning's SIGTERM handler sets received_sigterm and forwards the signal to DDP's child processes.
    os.kill(os.getpid(), signal.SIGTERM)
