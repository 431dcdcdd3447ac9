"""Precision, recall, density and coverage on point sets whose answers are known."""

import pytest
import torch

from handwriting_gan.metrics.manifold import manifold_metrics


def blobs(n: int, seed: int, centres: int = 10, spread: float = 0.3) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    middle = torch.randn(centres, 8, generator=torch.Generator().manual_seed(7)) * 4
    labels = torch.randint(centres, (n,), generator=generator)
    return middle[labels] + spread * torch.randn(n, 8, generator=generator)


def test_identical_sets_have_full_precision_recall_and_coverage():
    real = blobs(500, seed=1)
    result = manifold_metrics(real, real.clone(), k=5)
    assert result["precision"] == 1.0 and result["recall"] == 1.0 and result["coverage"] == 1.0
    assert result["density"] == pytest.approx(1.0, abs=0.15)


def test_a_fresh_sample_of_the_same_distribution_scores_high():
    result = manifold_metrics(blobs(800, seed=1), blobs(800, seed=2), k=5)
    assert result["precision"] > 0.9 and result["recall"] > 0.9 and result["coverage"] > 0.9


def test_a_collapsed_generator_has_low_recall_and_coverage():
    real = blobs(500, seed=1)
    collapsed = real[:1].repeat(500, 1)  # one real sample, repeated
    result = manifold_metrics(real, collapsed, k=5)
    assert result["precision"] == 1.0  # the one image is realistic...
    assert result["recall"] < 0.05  # ...but the variety is gone
    assert result["coverage"] < 0.05


def test_samples_off_the_data_have_no_precision_or_density():
    real = blobs(500, seed=1)
    result = manifold_metrics(real, blobs(500, seed=2) + 100.0, k=5)
    assert result["precision"] == 0.0 and result["density"] == 0.0 and result["coverage"] == 0.0
