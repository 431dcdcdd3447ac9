"""Synthetic images of any shape and class count, for tests and smoke runs without real data."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from handwriting_gan.data.base import ImageDataModule
from handwriting_gan.errors import ConfigError


class FakeDataModule(ImageDataModule):
    """`num_classes` smooth random prototypes; each image is its class prototype plus pixel noise.

    The distribution is simple enough that a GAN measurably learns it in a few hundred steps,
    which makes it the dataset of the learning checks in the tests.
    """

    def __init__(
        self, size: int, num_classes: int, noise: float = 0.05, test_size: int = 0, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        if int(size) <= 0 or int(num_classes) <= 0:
            raise ConfigError(f"dataset.size={size} and dataset.num_classes={num_classes} must be positive.")
        self.size = int(size)
        self.test_size = int(test_size) or max(1, self.size // 5)
        self.noise = float(noise)
        self.class_names = tuple(f"class_{i}" for i in range(int(num_classes)))

    def prototypes(self) -> torch.Tensor:
        """The class prototypes in [0, 1], shape (num_classes, C, H, W)."""
        channels, height, width = self.image_shape
        generator = torch.Generator().manual_seed(self.seed)
        coarse = torch.rand(
            self.num_classes, channels, max(2, height // 7), max(2, width // 7), generator=generator
        )
        smooth = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
        return (smooth > 0.5).float()  # crisp ink-on-background shapes

    def _load(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        count = self.size if train else self.test_size
        generator = torch.Generator().manual_seed(self.seed + (0 if train else 1))
        labels = torch.randint(self.num_classes, (count,), generator=generator)
        images = self.prototypes()[labels]
        images = images + self.noise * torch.randn(images.shape, generator=generator)
        return (images.clamp(0, 1) * 255).round().to(torch.uint8), labels
