"""The study's fully connected generator and discriminator; depth, widths and activations come from the
config, and `num_classes > 0` makes them class-conditional (a cGAN).

Generator: z ~ N(0, I) [+ label embedding] -> [Linear, activation] per hidden width -> Linear -> tanh.
Discriminator: image -> [Linear, LeakyReLU(0.2), Dropout(0.3)] per width -> Linear, plus, when
conditional, the projection term <embedding(label), last hidden features> (Miyato & Koyama 2018).
The study's text gives the generator ReLU; `conf/model/mlp3.yaml` keeps LeakyReLU(0.2), which the
project's runs were measured with (docs/guide/models.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from handwriting_gan.errors import ConfigError
from handwriting_gan.models.contract import Discriminator, Generator, activation


def _check_widths(name: str, widths: Sequence[int]) -> list[int]:
    widths = list(widths)
    if not widths or any(isinstance(w, bool) or int(w) <= 0 for w in widths):
        raise ConfigError(
            f"model.{name}.hidden={widths} must be a non-empty list of positive layer widths, "
            f"e.g. [256, 512, 1024]."
        )
    return [int(w) for w in widths]


def _check_embedding(name: str, embed_dim: int) -> int:
    if isinstance(embed_dim, bool) or int(embed_dim) <= 0:
        raise ConfigError(f"model.{name}.embed_dim={embed_dim} must be a positive integer, e.g. 50.")
    return int(embed_dim)


class MLPGenerator(Generator):
    def __init__(
        self,
        latent_dim: int,
        hidden: Sequence[int],
        image_shape: Sequence[int],
        num_classes: int = 0,
        embed_dim: int = 50,
        activation_fn: str = "leaky_relu",
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__(latent_dim, image_shape, num_classes)
        self.embedding = (
            nn.Embedding(self.num_classes, _check_embedding("generator", embed_dim))
            if self.conditional
            else None
        )
        layers: list[nn.Module] = []
        width_in = self.latent_dim + (self.embedding.embedding_dim if self.embedding else 0)
        for width in _check_widths("generator", hidden):
            layers += [nn.Linear(width_in, width), activation(activation_fn, negative_slope)]
            width_in = width
        layers += [nn.Linear(width_in, math.prod(self.image_shape)), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    @property
    def num_hidden_layers(self) -> int:
        return sum(isinstance(m, nn.Linear) for m in self.net) - 1

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        labels = self.check_labels(labels, z.size(0))
        if labels is not None:
            z = torch.cat([z, self.embedding(labels)], dim=1)
        return self.net(z).view(z.size(0), *self.image_shape)


class MLPDiscriminator(Discriminator):
    def __init__(
        self,
        hidden: Sequence[int],
        image_shape: Sequence[int],
        num_classes: int = 0,
        dropout: float = 0.3,
        activation_fn: str = "leaky_relu",
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__(image_shape, num_classes)
        if not 0.0 <= float(dropout) < 1.0:
            raise ConfigError(f"model.discriminator.dropout={dropout} must be in [0, 1).")
        layers: list[nn.Module] = [nn.Flatten()]
        width_in = math.prod(self.image_shape)
        for width in _check_widths("discriminator", hidden):
            layers += [
                nn.Linear(width_in, width),
                activation(activation_fn, negative_slope),
                nn.Dropout(dropout),
            ]
            width_in = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(width_in, 1)
        # Projection: a class-specific direction in the last features, so the logit depends on how well
        # the image fits its label, not only on whether it looks real.
        self.projection = nn.Embedding(self.num_classes, width_in) if self.conditional else None
        if self.projection is not None:
            nn.init.normal_(self.projection.weight, std=0.02)

    @property
    def num_hidden_layers(self) -> int:
        return sum(isinstance(m, nn.Linear) for m in self.features)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of 'real', shape (N,)."""
        features = self.features(images)
        logits = self.head(features).squeeze(1)
        labels = self.check_labels(labels, images.size(0))
        if labels is not None:
            logits = logits + (self.projection(labels) * features).sum(dim=1)
        return logits
