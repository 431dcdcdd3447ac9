"""Per-epoch sample grids from fixed noise: a PNG per epoch, a TensorBoard image and a progress GIF."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from PIL import Image
from torchvision.utils import make_grid, save_image

from handwriting_gan.errors import ConfigError
from handwriting_gan.files import atomic_path


class SampleGrid(L.Callback):
    """Draws `nrow x nrow` samples from the same noise after every epoch.

    `nrow=None` takes the dataset's own grid size (4 for MNIST as in the study, 7 for EMNIST).
    """

    FRAME_PATTERN = "samples_epoch_*.png"

    def __init__(
        self,
        figures_dir: str,
        nrow: int | None = None,
        seed: int = 0,
        gif: bool = True,
        frame_ms: int = 200,
    ) -> None:
        if nrow is not None and int(nrow) <= 0:
            raise ConfigError(f"callbacks.samples.nrow={nrow} must be a positive integer or null.")
        self.figures_dir = Path(figures_dir)
        self.nrow = nrow
        self.seed = seed
        self.gif = gif
        self.frame_ms = frame_ms
        self._noise: torch.Tensor | None = None

    def _grid_size(self, trainer: L.Trainer) -> int:
        if self.nrow is not None:
            return int(self.nrow)
        return int(getattr(trainer.datamodule, "sample_grid", 8))

    def fixed_noise(self, trainer: L.Trainer, pl_module: L.LightningModule) -> torch.Tensor:
        if self._noise is None:
            count = self._grid_size(trainer) ** 2
            generator = torch.Generator().manual_seed(self.seed)
            self._noise = torch.randn(count, pl_module.latent_dim, generator=generator)
        return self._noise

    def frame_path(self, epoch: int) -> Path:
        return self.figures_dir / f"samples_epoch_{epoch:03d}.png"

    @rank_zero_only
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        images = pl_module.sample(self.fixed_noise(trainer, pl_module)).float().cpu()
        grid = make_grid(
            images, nrow=self._grid_size(trainer), normalize=True, value_range=(-1, 1), padding=2
        )
        epoch = trainer.current_epoch
        with atomic_path(self.frame_path(epoch)) as tmp:
            save_image(grid, tmp)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image("samples", grid, global_step=epoch)
        if self.gif:
            self.write_gif()

    def write_gif(self) -> Path | None:
        """Rebuild figures/progress.gif from every epoch's PNG (a resumed run keeps its early frames)."""
        frames = sorted(self.figures_dir.glob(self.FRAME_PATTERN))
        if not frames:
            return None
        images = [Image.open(path).convert("P", palette=Image.Palette.ADAPTIVE) for path in frames]
        target = self.figures_dir / "progress.gif"
        with atomic_path(target) as tmp:
            images[0].save(
                tmp,
                format="GIF",
                save_all=True,
                append_images=images[1:],
                duration=self.frame_ms,
                loop=0,
                optimize=False,
            )
        return target
