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

    @rank_zero_only
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Once per run: `figures/real_samples.png`, real training images of each class in turn,
        captioned with their class names, the reference to hold the generated grids against."""
        datamodule = trainer.datamodule
        if not hasattr(datamodule, "split"):
            return
        images, labels = datamodule.split(train=True)
        count = self._grid_size(trainer) ** 2
        picks = _round_robin_by_class(labels, count)
        names = [str(datamodule.class_names[int(labels[i])]) for i in picks] if datamodule.class_names else []
        sheet = captioned_grid(images[picks], names, self._grid_size(trainer))
        with atomic_path(self.figures_dir / "real_samples.png") as tmp:
            sheet.save(tmp, format="PNG")

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


def _round_robin_by_class(labels: torch.Tensor, count: int) -> list[int]:
    """Indices of up to `count` images taking one of each class in turn (first occurrences first)."""
    queues = [torch.nonzero(labels == c).flatten().tolist() for c in torch.unique(labels).tolist()]
    picks: list[int] = []
    while len(picks) < count and any(queues):
        for queue in queues:
            if queue and len(picks) < count:
                picks.append(queue.pop(0))
    return picks


def captioned_grid(images: torch.Tensor, captions: list[str], nrow: int, scale: int = 2) -> Image.Image:
    """uint8 images (N, C, H, W) as an `nrow`-wide grid, each cell enlarged `scale` times with its
    caption underneath (PIL's built-in font)."""
    from PIL import ImageDraw

    _, channels, height, width = images.shape
    cell_w, cell_h, caption_h = width * scale, height * scale, 12
    rows = -(-len(images) // nrow)
    sheet = Image.new("L" if channels == 1 else "RGB", (nrow * cell_w, rows * (cell_h + caption_h)), 0)
    draw = ImageDraw.Draw(sheet)
    for i, image in enumerate(images):
        array = image.permute(1, 2, 0).squeeze(-1).numpy()
        tile = Image.fromarray(array).resize((cell_w, cell_h), Image.Resampling.NEAREST)
        x, y = (i % nrow) * cell_w, (i // nrow) * (cell_h + caption_h)
        sheet.paste(tile, (x, y))
        if i < len(captions):
            draw.text((x + 2, y + cell_h), captions[i][:10], fill=255 if channels == 1 else (255,) * 3)
    return sheet
