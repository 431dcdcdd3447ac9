"""The loss-curve figure (discriminator and generator loss per epoch), kept across resumes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import matplotlib

matplotlib.use("Agg")  # runs headless; set before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402
from lightning.pytorch.utilities import rank_zero_only  # noqa: E402

from handwriting_gan.files import atomic_path  # noqa: E402
from handwriting_gan.game import GAN  # noqa: E402


class LossCurves(L.Callback):
    """Writes `figures/losses.png` after every epoch from the epoch means of the logged losses."""

    def __init__(self, figures_dir: str) -> None:
        self.figures_dir = Path(figures_dir)
        self.history: dict[str, list[float]] = {name: [] for name in GAN.EPOCH_LOSSES}

    @rank_zero_only
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = trainer.callback_metrics
        if not all(tag in metrics for tag in GAN.EPOCH_LOSSES.values()):
            return
        for name, tag in GAN.EPOCH_LOSSES.items():
            self.history[name].append(float(metrics[tag]))
        self.write_figure()

    def write_figure(self) -> Path:
        target = self.figures_dir / "losses.png"
        fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
        for name, values in self.history.items():
            ax.plot(range(1, len(values) + 1), values, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss (epoch mean)")
        ax.set_title("Discriminator and generator loss")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)
        return target

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = {name: list(values) for name, values in state_dict["history"].items()}
