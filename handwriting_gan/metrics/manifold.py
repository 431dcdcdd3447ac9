"""Improved precision and recall (Kynkaanniemi et al., 2019) and density and coverage (Naeem et al.,
2020): k-nearest-neighbour balls around real and generated features."""

from __future__ import annotations

import torch

from handwriting_gan.metrics.neighbours import distance_blocks, kth_neighbour_radii


def manifold_metrics(real: torch.Tensor, fake: torch.Tensor, k: int = 5, seed: int = 0) -> dict[str, float]:
    """precision: share of generated samples inside some real sample's k-NN ball (fidelity);
    recall: share of real samples inside some generated sample's ball (diversity);
    density: mean number of real balls holding a generated sample, over k (about 1 when matched);
    coverage: share of real samples whose ball holds a generated sample (diversity, robust to outliers).

    Both sets are first cut to the smaller one's size (a seeded random subset): k-NN radii shrink as a
    set grows, so unequal sizes would favour one side. Distances are taken in float64: they come from
    |a|^2 + |b|^2 - 2 a.b, and in float32 that cancellation blurs the ball edges of features far from
    the origin (ReLU features share a large positive offset), moving points in or out of balls.
    """
    size = min(len(real), len(fake))
    generator = torch.Generator().manual_seed(seed)
    real = real[torch.randperm(len(real), generator=generator)[:size].to(real.device)].double()
    fake = fake.to(real.device)[
        torch.randperm(len(fake), generator=generator)[:size].to(real.device)
    ].double()

    real_radii = kth_neighbour_radii(real, k)
    fake_radii = kth_neighbour_radii(fake, k)
    balls_holding_fake = torch.zeros(size, dtype=torch.float64, device=real.device)
    real_in_fake_manifold = torch.zeros(size, dtype=torch.bool, device=real.device)
    nearest_fake = torch.full((size,), float("inf"), dtype=torch.float64, device=real.device)
    for rows, distances in distance_blocks(fake, real):  # (generated block, all real)
        balls_holding_fake[rows] = (distances < real_radii[None, :]).sum(dim=1).double()
        real_in_fake_manifold |= (distances < fake_radii[rows, None]).any(dim=0)
        nearest_fake = torch.minimum(nearest_fake, distances.min(dim=0).values)
    return {
        "precision": float((balls_holding_fake > 0).double().mean()),
        "recall": float(real_in_fake_manifold.double().mean()),
        "density": float(balls_holding_fake.sum() / (k * size)),
        "coverage": float((nearest_fake < real_radii).double().mean()),
    }
