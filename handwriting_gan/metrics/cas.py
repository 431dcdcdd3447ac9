"""Classification accuracy score (Ravuri & Vinyals, 2019): how well a classifier trained only on
generated labeled samples does on real test data, next to the same classifier trained on real data."""

from __future__ import annotations

import torch

from handwriting_gan.metrics.classifier import DEFAULT_SETTINGS, ClassifierSettings, accuracy, fit_classifier


def classification_accuracy_score(
    generated: torch.Tensor,
    generated_labels: torch.Tensor,
    real_train: tuple[torch.Tensor, torch.Tensor],
    real_test: tuple[torch.Tensor, torch.Tensor],
    num_classes: int,
    settings: ClassifierSettings = DEFAULT_SETTINGS,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> dict[str, float]:
    """cas: real test accuracy of a fresh classifier trained on the uint8 `generated` images and their
    labels; cas_real: the same recipe trained on as many real training images (a seeded random subset,
    or all of them when there are fewer); cas_num_generated and cas_num_real: the two set sizes."""
    count = min(len(generated), len(real_train[0]))
    pick = torch.randperm(len(real_train[0]), generator=torch.Generator().manual_seed(seed))[:count]
    on_generated = fit_classifier(generated, generated_labels, num_classes, settings, device)
    on_real = fit_classifier(real_train[0][pick], real_train[1][pick], num_classes, settings, device)
    return {
        "cas": accuracy(on_generated, *real_test),
        "cas_real": accuracy(on_real, *real_test),
        "cas_num_generated": len(generated),
        "cas_num_real": count,
    }
