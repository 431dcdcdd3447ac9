"""Frechet distance between two feature sets (float64), computed by torchmetrics' FID metric.

The domain classifier's features are extracted once and shared by every metric, so torchmetrics gets
them through a pass-through feature extractor instead of running the network itself.
"""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance


class GivenFeatures(nn.Module):
    """A torchmetrics 'feature extractor' for inputs that already are features: casts to float64."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = int(num_features)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features.double()


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^(1/2)) of two (N, D) feature sets, in float64.

    Rounding can leave identical sets a hair below zero; the result is clamped at 0.
    """
    if len(real) < 2 or len(fake) < 2:
        raise ValueError(f"FD needs at least 2 samples per set, got {len(real)} and {len(fake)}.")
    metric = FrechetInceptionDistance(feature=GivenFeatures(real.shape[1])).to(real.device)
    metric.update(real, real=True)
    metric.update(fake.to(real.device), real=False)
    return max(0.0, float(metric.compute()))
