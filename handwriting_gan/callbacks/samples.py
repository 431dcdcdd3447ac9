"""Per-epoch sample grids from fixed noise: a PNG per epoch, a TensorBoard image and a progress GIF.

Grids are enlarged `scale` times (nearest neighbour) so a person can see the strokes; a class-
conditional generator's grid has one row per class (as many as fit), each row named on its left; an
image-conditional augmenter's has one row per real training image (one class after another): the image
itself, then its variations.
Files are numbered by epoch from 1, as the loss figure and README count."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from PIL import Image, ImageDraw
from torchvision.utils import make_grid

from handwriting_gan.data.base import to_signed_unit
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
        scale: int = 4,
        max_class_rows: int = 10,
    ) -> None:
        if nrow is not None and (isinstance(nrow, bool) or int(nrow) <= 0):
            raise ConfigError(f"callbacks.samples.nrow={nrow} must be a positive integer or null.")
        if isinstance(scale, bool) or int(scale) <= 0:
            raise ConfigError(f"callbacks.samples.scale={scale} must be a positive integer (4: 4x larger).")
        self.figures_dir = Path(figures_dir)
        self.nrow = nrow
        self.seed = seed
        self.gif = gif
        self.frame_ms = frame_ms
        self.scale = int(scale)
        self.max_class_rows = int(max_class_rows)
        self._noise: torch.Tensor | None = None
        self._labels: torch.Tensor | None = None
        self._sources: torch.Tensor | None = None

    def _grid_size(self, trainer: L.Trainer) -> int:
        if self.nrow is not None:
            return int(self.nrow)
        return int(getattr(trainer.datamodule, "sample_grid", 8))

    def _rows(self, trainer: L.Trainer, pl_module: L.LightningModule) -> int:
        if pl_module.num_classes:
            return min(pl_module.num_classes, max(self.max_class_rows, self._grid_size(trainer)))
        return self._grid_size(trainer)

    def fixed_noise(self, trainer: L.Trainer, pl_module: L.LightningModule) -> torch.Tensor:
        """The same noise every epoch (and, for a conditional generator, the labels: row r is class r)."""
        if self._noise is None:
            columns, rows = self._grid_size(trainer), self._rows(trainer, pl_module)
            generator = torch.Generator().manual_seed(self.seed)
            self._noise = torch.randn(rows * columns, pl_module.latent_dim, generator=generator)
            if pl_module.num_classes:
                self._labels = torch.arange(rows).repeat_interleave(columns)
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
        """The grid after epoch `epoch`, counted from 1."""
        return self.figures_dir / f"samples_epoch_{epoch:03d}.png"

    @rank_zero_only
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        noise = self.fixed_noise(trainer, pl_module)
        if hasattr(pl_module, "sample_variations"):
            images = self.variations(trainer, pl_module, noise)
        else:
            images = pl_module.sample(noise, self._labels).float().cpu()
        grid = make_grid(
            images, nrow=self._grid_size(trainer), normalize=True, value_range=(-1, 1), padding=2
        )
        sheet = self.render(grid, trainer, pl_module)
        epoch = trainer.current_epoch + 1
        with atomic_path(self.frame_path(epoch)) as tmp:
            sheet.save(tmp, format="PNG")
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                picture = torch.from_numpy(np.array(sheet.convert("RGB"))).permute(2, 0, 1)
                logger.experiment.add_image("samples", picture, global_step=epoch)
        # Rebuilding the GIF reads every frame: every 10th epoch and at the end keeps long runs cheap.
        if self.gif and epoch % 10 == 0:
            self.write_gif()

    def variations(
        self, trainer: L.Trainer, pl_module: L.LightningModule, noise: torch.Tensor
    ) -> torch.Tensor:
        """Rows of (a real training image, then its variations from the fixed noise), in [-1, 1]."""
        columns = self._grid_size(trainer)
        if self._sources is None:
            images, labels = trainer.datamodule.split(train=True)
            picks = _round_robin_by_class(labels, len(noise) // columns)
            self._sources = to_signed_unit(images[picks])
        sources = self._sources.repeat_interleave(columns, dim=0)
        varied = pl_module.sample_variations(sources, noise[: len(sources)]).float().cpu()
        varied[::columns] = sources[::columns]
        return varied

    @rank_zero_only
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
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

    def render(self, grid: torch.Tensor, trainer: L.Trainer, pl_module: L.LightningModule) -> Image.Image:
        """The grid (C, H, W in [0, 1]) enlarged `scale` times; with class names left of each row for
        a conditional generator."""
        array = grid.mul(255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
        picture = Image.fromarray(array).convert("L" if grid.size(0) in (1, 3) and _grey(grid) else "RGB")
        picture = picture.resize(
            (picture.width * self.scale, picture.height * self.scale), Image.Resampling.NEAREST
        )
        names = getattr(trainer.datamodule, "class_names", ())
        if not pl_module.num_classes or not names:
            return picture
        rows = self._rows(trainer, pl_module)
        margin = 8 * max(len(str(n)[:14]) for n in names[:rows]) + 8
        sheet = Image.new(picture.mode, (picture.width + margin, picture.height), 0)
        sheet.paste(picture, (margin, 0))
        draw = ImageDraw.Draw(sheet)
        row_height = picture.height / rows
        for row in range(rows):
            draw.text(
                (4, int(row * row_height + row_height / 2) - 5),
                str(names[row])[:14],
                fill=255 if sheet.mode == "L" else (255,) * 3,
            )
        return sheet


def _grey(grid: torch.Tensor) -> bool:
    return grid.size(0) == 1 or bool(torch.equal(grid[0], grid[1]) and torch.equal(grid[1], grid[2]))


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
            draw.text((x + 2, y + cell_h), captions[i][:11], fill=255 if channels == 1 else (255,) * 3)
    return sheet
