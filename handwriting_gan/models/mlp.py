"""The study's fully connected generator and discriminator; depth and widths come from the config.

Generator: z ~ N(0, I) -> [Linear, LeakyReLU(0.2)] per hidden width -> Linear -> tanh -> image.
Discriminator: image -> [Linear, LeakyReLU(0.2), Dropout(0.3)] per hidden width -> Linear -> logit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from handwriting_gan.errors import ConfigError


def _check_widths(name: str, widths: Sequence[int]) -> list[int]:
    widths = list(widths)
    if not widths or any(int(w) <= 0 for w in widths):
        raise ConfigError(
            f"model.{name}.hidden={widths} must be a non-empty list of positive layer widths, "
            f"e.g. [256, 512, 1024]."
        )
    return [int(w) for w in widths]


class MLPGenerator(nn.Module):
    def __init__(
        self,
        latent_dim: int,
        hidden: Sequence[int],
        image_shape: Sequence[int],
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        if int(latent_dim) <= 0:
            raise ConfigError(f"model.latent_dim={latent_dim} must be a positive integer.")
        self.latent_dim = int(latent_dim)
        self.image_shape = tuple(int(s) for s in image_shape)
        layers: list[nn.Module] = []
        width_in = self.latent_dim
        for width in _check_widths("generator", hidden):
            layers += [nn.Linear(width_in, width), nn.LeakyReLU(negative_slope)]
            width_in = width
        layers += [nn.Linear(width_in, math.prod(self.image_shape)), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    @property
    def num_hidden_layers(self) -> int:
        return sum(isinstance(m, nn.Linear) for m in self.net) - 1

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.size(0), *self.image_shape)


class MLPDiscriminator(nn.Module):
    def __init__(
        self,
        hidden: Sequence[int],
        image_shape: Sequence[int],
        dropout: float = 0.3,
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        if not 0.0 <= float(dropout) < 1.0:
            raise ConfigError(f"model.discriminator.dropout={dropout} must be in [0, 1).")
        layers: list[nn.Module] = [nn.Flatten()]
        width_in = math.prod(int(s) for s in image_shape)
        for width in _check_widths("discriminator", hidden):
            layers += [
                nn.Linear(width_in, width),
                nn.LeakyReLU(negative_slope),
                nn.Dropout(dropout),
            ]
            width_in = width
        layers.append(nn.Linear(width_in, 1))
        self.net = nn.Sequential(*layers)

    @property
    def num_hidden_layers(self) -> int:
        return sum(isinstance(m, nn.Linear) for m in self.net) - 1

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of 'real', shape (N,)."""
        return self.net(images).squeeze(1)
