"""Memorization: copies of training images stand out against fresh real images."""

import pytest
import torch

from handwriting_gan.metrics.memorization import memorization


def points(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, 16, generator=torch.Generator().manual_seed(seed))


def test_fresh_samples_are_as_far_from_the_training_set_as_test_data():
    train, test = points(2000, 1), points(500, 2)
    result = memorization(points(500, 3), train, test)
    assert result["memorization_ratio"] == pytest.approx(1.0, abs=0.1)
    assert result["memorized_fraction"] < 0.05


def test_copied_training_samples_are_flagged():
    train, test = points(2000, 1), points(500, 2)
    copies = train[:500] + 1e-4 * points(500, 4)
    result = memorization(copies, train, test)
    assert result["memorization_ratio"] < 0.01
    assert result["memorized_fraction"] == 1.0
    assert result["nn_train_generated"] < result["nn_train_test"]
