"""Per-class recall and FD on well-separated clusters: a generator that draws each class afresh, one that
ignores z (a single point per class), and classes too small to measure."""

import math

import pytest
import torch

from handwriting_gan.metrics.frechet import frechet_distance
from handwriting_gan.metrics.per_class import per_class_metrics

CLASSES, DIM = 6, 8
CENTRES = 10 * torch.randn(CLASSES, DIM, generator=torch.Generator().manual_seed(0))


def clusters(per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(features, labels): `per_class` unit-variance draws around each class centre, in shuffled order."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(CLASSES).repeat_interleave(per_class)
    labels = labels[torch.randperm(len(labels), generator=generator)]
    return CENTRES[labels] + torch.randn(len(labels), DIM, generator=generator), labels


@pytest.fixture(scope="module")
def real():
    """(test features, test labels, training features, training labels)."""
    return (*clusters(60, seed=1), *clusters(200, seed=2))


def test_a_generator_that_draws_each_class_afresh_scores_like_real_data(real):
    generated, requested = clusters(60, seed=3)
    values = per_class_metrics(real[0], real[1], generated, requested, real[2], real[3])
    assert values["per_class_classes"] == values["per_class_recall_classes"] == CLASSES
    assert values["recall_per_class"] > 0.8
    # Fresh draws and real training images differ from the test images by sampling noise alone.
    assert values["fd_per_class"] < 2 * values["fd_per_class_floor"]
    assert values["fd_per_class_floor"] < 2 * values["fd_per_class"]


def test_a_generator_that_ignores_z_has_no_recall_within_a_class_and_a_large_fd(real):
    good, requested = clusters(60, seed=3)
    # One point per class whatever z: each class's samples are a single repeated feature vector.
    collapsed = (
        CENTRES[requested] + torch.randn(CLASSES, DIM, generator=torch.Generator().manual_seed(4))[requested]
    )
    fresh = per_class_metrics(real[0], real[1], good, requested, real[2], real[3])
    values = per_class_metrics(real[0], real[1], collapsed, requested, real[2], real[3])
    assert values["recall_per_class"] < 0.05
    assert values["fd_per_class"] > 10 * fresh["fd_per_class"]
    assert values["fd_per_class_floor"] == fresh["fd_per_class_floor"]  # real vs real: the same floor


def test_the_floor_is_measured_at_the_generated_sample_count(real):
    few = per_class_metrics(real[0], real[1], *clusters(10, seed=3), real[2], real[3])
    many = per_class_metrics(real[0], real[1], *clusters(60, seed=3), real[2], real[3])
    # FD is biased upwards on small sets, for real and generated samples alike.
    assert few["fd_per_class_floor"] > 2 * many["fd_per_class_floor"]
    assert few["fd_per_class"] < 2 * few["fd_per_class_floor"]


def test_classes_with_too_few_samples_are_left_out(real):
    generated, requested = clusters(60, seed=3)
    keep = (requested != 0) | (torch.cumsum(requested == 0, dim=0) <= 3)  # 3 samples of class 0
    keep &= (requested != 1) | (torch.cumsum(requested == 1, dim=0) <= 1)  # 1 sample of class 1
    values = per_class_metrics(real[0], real[1], generated[keep], requested[keep], real[2], real[3])
    # Class 0 still has an FD (2 or more samples) but no recall at k=5 (6 or more); class 1 has neither.
    assert values["per_class_classes"] == CLASSES - 1
    assert values["per_class_recall_classes"] == CLASSES - 2
    class_0 = frechet_distance(real[0][real[1] == 0], generated[keep][requested[keep] == 0])
    others = per_class_metrics(real[0], real[1], generated[requested >= 2], requested[requested >= 2])
    assert values["fd_per_class"] == pytest.approx((class_0 + 4 * others["fd_per_class"]) / 5, rel=1e-9)
    assert values["recall_per_class"] == pytest.approx(others["recall_per_class"], rel=1e-9)


def test_with_no_measurable_class_the_values_are_nan(real):
    generated, requested = clusters(1, seed=3)
    values = per_class_metrics(real[0], real[1], generated, requested, real[2], real[3])
    assert values["per_class_classes"] == values["per_class_recall_classes"] == 0
    assert all(
        math.isnan(values[name]) for name in ("recall_per_class", "fd_per_class", "fd_per_class_floor")
    )


def test_a_class_with_a_single_training_image_has_no_floor(real):
    generated, requested = clusters(60, seed=3)
    train, train_labels = real[2], real[3]
    keep = (train_labels != 0) | (torch.cumsum(train_labels == 0, dim=0) <= 1)
    values = per_class_metrics(real[0], real[1], generated, requested, train[keep], train_labels[keep])
    assert math.isnan(values["fd_per_class_floor"]) and not math.isnan(values["fd_per_class"])


def test_the_values_are_reproducible_for_a_seed(real):
    generated, requested = clusters(60, seed=3)
    first = per_class_metrics(real[0], real[1], generated, requested, real[2], real[3], seed=5)
    assert first == per_class_metrics(real[0], real[1], generated, requested, real[2], real[3], seed=5)
    assert "fd_per_class_floor" not in per_class_metrics(real[0], real[1], generated, requested)
