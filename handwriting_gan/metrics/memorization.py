"""Memorization: are generated samples closer to training images than fresh real images are?"""

from __future__ import annotations

import torch

from handwriting_gan.metrics.neighbours import nearest_distances


def memorization(generated: torch.Tensor, train: torch.Tensor, test: torch.Tensor) -> dict[str, float]:
    """Nearest-training-image distances in feature space, generated samples vs real test images.

    nn_train_generated / nn_train_test: the median of each; memorization_ratio: their quotient (about 1
    for a generator that makes new images, near 0 for one that copies its training set);
    memorized_fraction: share of generated samples closer to a training image than 99% of test images
    are (about 0.01 when nothing is copied).
    """
    generated_nearest = nearest_distances(generated.float(), train.float())
    test_nearest = nearest_distances(test.float().to(generated.device), train.float())
    generated_median = float(generated_nearest.median())
    test_median = float(test_nearest.median())
    threshold = torch.quantile(test_nearest, 0.01)
    return {
        "nn_train_generated": generated_median,
        "nn_train_test": test_median,
        "memorization_ratio": generated_median / test_median if test_median > 0 else float("nan"),
        "memorized_fraction": float((generated_nearest < threshold).float().mean()),
    }
