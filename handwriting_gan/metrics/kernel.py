"""Kernel distance (KID): the unbiased MMD^2 with a cubic polynomial kernel, averaged over subsets."""

from __future__ import annotations

import torch
from torchmetrics.image.kid import poly_mmd


def kernel_distance(
    real: torch.Tensor, fake: torch.Tensor, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> dict[str, float]:
    """KID of two (N, D) feature sets: mean and standard deviation over `subsets` random subsets.

    The subset size shrinks to the smaller set when a set has fewer than `subset_size` samples (e.g.
    Chars74K's test split), so small sets still give an estimate instead of an error. Each subset is
    the head of a random permutation of the real set, then of the generated set, both drawn from one
    torch generator seeded by `seed`. Each subset's MMD^2 leaves out the kernel's diagonal, so its
    expectation is exactly 0 for equal distributions (single values can be negative).
    """
    size = min(int(subset_size), len(real), len(fake))
    if size < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {len(real)} and {len(fake)}.")
    generator = torch.Generator().manual_seed(seed)
    real, fake = real.double(), fake.double().to(real.device)
    scores = []
    for _ in range(int(subsets)):
        pick_real = torch.randperm(len(real), generator=generator)[:size].to(real.device)
        pick_fake = torch.randperm(len(fake), generator=generator)[:size].to(real.device)
        scores.append(poly_mmd(real[pick_real], fake[pick_fake]))
    scores = torch.stack(scores)
    return {
        "kid": float(scores.mean()),
        "kid_std": float(scores.std(unbiased=False)),
        "kid_subset_size": size,
    }
