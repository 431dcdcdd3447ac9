"""The losses the game can be played with (`model.loss`), listed once in `LOSSES`, and the mode-seeking
term G's loss can add.

A loss scores D's logits as they come: one per image, or one per (x, y) pair when D is shown pairs (an
image-conditional augmenter), so a loss for pairs is one more entry of `LOSSES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from handwriting_gan.errors import ConfigError


@dataclass(frozen=True)
class Loss:
    """What each player minimises, from D's logits: `d_loss(real_logits, fake_logits)` for D and
    `g_loss(fake_logits)` for G, each a scalar (batch means)."""

    d_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    g_loss: Callable[[torch.Tensor], torch.Tensor]


def bce_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """BCE(D(x), 1) + BCE(D(G(z)), 0), as in the study; on logits, which is safe under mixed precision."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    return real + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))


def bce_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating -log D(G(z)) of Goodfellow et al. (2014): BCE(D(G(z)), 1)."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """mean(max(0, 1 - D(x))) + mean(max(0, 1 + D(G(z))))."""
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def hinge_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """-mean(D(G(z)))."""
    return -fake_logits.mean()


#: `model.loss` -> the loss; bce is the study's.
LOSSES: dict[str, Loss] = {
    "bce": Loss(bce_d_loss, bce_g_loss),
    "hinge": Loss(hinge_d_loss, hinge_g_loss),
}


def loss_named(name: str) -> Loss:
    """The entry of `LOSSES` called `name`, or ConfigError naming the value and the choices."""
    if not isinstance(name, str) or name not in LOSSES:
        raise ConfigError(f"model.loss={name} is not allowed: expected one of {', '.join(LOSSES)}.")
    return LOSSES[name]


def mode_seeking_penalty(z: torch.Tensor, images: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """The mode-seeking term of Mao et al. (2019, MSGAN): 1 / the mean over pairs (i, i + n/2) of
    |G(z_i) - G(z_j)| / |z_i - z_j| (mean absolute differences). Small when different noise gives
    different images, large when G ignores z (one image per class whatever the noise)."""
    half = z.size(0) // 2
    image_gap = (images[:half] - images[half : 2 * half]).abs().flatten(1).mean(dim=1)
    noise_gap = (z[:half] - z[half : 2 * half]).abs().mean(dim=1)
    return 1.0 / ((image_gap / noise_gap).mean() + eps)
