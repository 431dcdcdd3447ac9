"""A console line every tenth of a run's epochs, for runs that another command starts with its progress
bar off (a log has no bar): how far the run is and about how long is left."""

from __future__ import annotations

import time

import lightning as L

from handwriting_gan.shell import duration, say


class EpochLines(L.Callback):
    """`<name>: epoch k of n, about <time> left` every `every` of the epochs, and the total at the end."""

    def __init__(self, name: str, every: float = 0.1) -> None:
        self.name = name
        self.every = every
        self.started = time.perf_counter()
        self.first = 0

    def on_train_start(self, trainer, game) -> None:
        self.started = time.perf_counter()
        self.first = trainer.current_epoch  # a resumed run's time left counts only this run's epochs

    def on_train_epoch_end(self, trainer, game) -> None:
        epoch, total = trainer.current_epoch + 1, trainer.max_epochs
        elapsed = time.perf_counter() - self.started
        if epoch == total:
            resumed = (
                f" (epochs {self.first + 1}-{total}; it continued from a checkpoint)" if self.first else ""
            )
            say(f"  {self.name}: {total} epochs done in {duration(elapsed)}{resumed}")
        elif epoch % max(1, round(self.every * total)) == 0:
            left = elapsed / max(1, epoch - self.first) * (total - epoch)
            say(f"  {self.name}: epoch {epoch} of {total}, about {duration(left)} left")
