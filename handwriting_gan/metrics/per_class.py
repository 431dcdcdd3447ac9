"""Per-class diversity of a class-conditional generator: each class's generated samples against that
class's own real test images (recall and FD), averaged over classes, next to a real-vs-real floor."""

from __future__ import annotations

import math

import torch

from handwriting_gan.metrics.frechet import frechet_distance
from handwriting_gan.metrics.manifold import manifold_metrics


def per_class_metrics(
    real_test_features: torch.Tensor,
    real_test_labels: torch.Tensor,
    generated_features: torch.Tensor,
    requested: torch.Tensor,
    train_features: torch.Tensor | None = None,
    train_labels: torch.Tensor | None = None,
    k: int = 5,
    seed: int = 0,
) -> dict[str, float]:
    """Means over the requested classes of a per-class statistic, each class's generated samples (by
    requested label) against the real test images of that class.

    recall_per_class: improved recall at `k` (see `manifold_metrics`), over the per_class_recall_classes
    classes with more than `k` samples on both sides; near 0 when a class's samples ignore z.
    fd_per_class: FD over the per_class_classes classes with at least 2 samples on both sides.
    fd_per_class_floor (only with training features): the same mean for real training images of each
    of those classes, as many as the class has generated samples (a seeded random subset; all when
    there are fewer), against its test images; NaN when one of them has fewer than 2 training images.
    A mean over no classes is NaN.

    Global metrics mix the classes, and the spread between classes hides a lack of spread within each:
    a generator that draws one image per class whatever z can keep a near-real global FD, while inside
    each class its recall drops to 0 and its FD rises.
    """
    if len(generated_features) != len(requested):
        raise ValueError(
            f"{len(generated_features)} generated samples but {len(requested)} requested labels."
        )
    device = real_test_features.device
    real_test_labels = real_test_labels.to(device)
    generated_features = generated_features.to(device)
    requested = requested.to(device)
    generator = torch.Generator().manual_seed(seed)

    recalls, distances, floors = [], [], []
    for label in torch.unique(requested).tolist():
        real = real_test_features[real_test_labels == label]
        fake = generated_features[requested == label]
        if min(len(real), len(fake)) > k:
            recalls.append(manifold_metrics(real, fake, k, seed=seed)["recall"])
        if min(len(real), len(fake)) < 2:
            continue
        distances.append(frechet_distance(real, fake))
        if train_features is not None:
            train = train_features[train_labels.to(train_features.device) == label]
            pick = torch.randperm(len(train), generator=generator)[: len(fake)]
            floors.append(
                frechet_distance(real, train[pick.to(train.device)]) if len(pick) >= 2 else math.nan
            )

    values = {
        "recall_per_class": _mean(recalls),
        "fd_per_class": _mean(distances),
        "per_class_classes": len(distances),
        "per_class_recall_classes": len(recalls),
    }
    if train_features is not None:
        values["fd_per_class_floor"] = _mean(floors)
    return values


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan
