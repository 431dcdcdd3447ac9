"""Drawing evaluation samples from a generator, unconditional or class-conditional.

A class-conditional generator has a positive `num_classes` attribute and is called as
`generator(z, labels)`; it is asked for every class equally often (in shuffled order).
Any other generator is called as `generator(z)`.
"""

from __future__ import annotations

import torch
from torch import nn

from handwriting_gan.data.base import to_uint8


def conditional_classes(generator: nn.Module) -> int:
    """The number of classes a class-conditional generator takes; 0 for an unconditional one."""
    return int(getattr(generator, "num_classes", 0) or 0)


@torch.no_grad()
def draw_samples(
    generator: nn.Module, num_samples: int, latent_dim: int, seed: int = 0, batch_size: int = 500
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(uint8 images (N, C, H, W) on the CPU, the requested labels or None) from z ~ N(0, I).

    The noise (and the requested labels) come from their own generator seeded by `seed`, so the same
    seed gives the same samples and the caller's random state is untouched.
    """
    device = next(iter([*generator.parameters(), *generator.buffers()]), torch.empty(0)).device
    random = torch.Generator().manual_seed(seed)
    num_classes = conditional_classes(generator)
    # All noise at once: the samples do not depend on batch_size.
    noise = torch.randn(num_samples, latent_dim, generator=random)
    labels = None
    if num_classes:
        labels = (torch.arange(num_samples) % num_classes)[torch.randperm(num_samples, generator=random)]
    was_training = generator.training
    generator.eval()
    images = []
    try:
        for start in range(0, num_samples, batch_size):
            inputs = [noise[start : start + batch_size].to(device)]
            if num_classes:
                inputs.append(labels[start : start + batch_size].to(device))
            images.append(to_uint8(generator(*inputs).float()).cpu())
    finally:
        generator.train(was_training)
    return torch.cat(images), labels
