"""Nearest-neighbour distances in feature space, in row blocks so 10k x 60k sets fit in memory."""

from __future__ import annotations

from collections.abc import Iterator

import torch

BLOCK = 1024


def distance_blocks(queries: torch.Tensor, reference: torch.Tensor) -> Iterator[tuple[slice, torch.Tensor]]:
    """(rows, Euclidean distances of queries[rows] to every reference point), block by block."""
    reference = reference.to(queries.device)
    for start in range(0, len(queries), BLOCK):
        rows = slice(start, min(start + BLOCK, len(queries)))
        yield rows, torch.cdist(queries[rows], reference)


def kth_neighbour_radii(features: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each point to its k-th nearest other point of the same set."""
    if len(features) <= k:
        raise ValueError(f"k={k} nearest neighbours need more than {k} points, got {len(features)}.")
    radii = torch.empty(len(features), dtype=features.dtype, device=features.device)
    for rows, distances in distance_blocks(features, features):
        # The k+1 smallest include the point itself (distance 0, or a duplicate's 0).
        radii[rows] = distances.topk(k + 1, dim=1, largest=False).values[:, k]
    return radii


def nearest_distances(queries: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Distance from each query to its nearest reference point."""
    nearest = torch.empty(len(queries), dtype=queries.dtype, device=queries.device)
    for rows, distances in distance_blocks(queries, reference):
        nearest[rows] = distances.min(dim=1).values
    return nearest
