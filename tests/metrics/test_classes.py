"""Class coverage exposes mode collapse; label agreement checks a conditional generator's classes."""

import math

import pytest
import torch

from handwriting_gan.metrics.classes import class_coverage, label_agreement


def test_a_balanced_spread_has_maximal_entropy_and_covers_every_class():
    result = class_coverage(torch.arange(1000) % 10, num_classes=10)
    assert result["class_entropy"] == pytest.approx(math.log(10))
    assert result["class_entropy_max"] == pytest.approx(math.log(10))
    assert result["classes_covered"] == 10
    assert result["class_histogram"] == [100] * 10


def test_a_collapsed_generator_has_zero_entropy_and_covers_one_class():
    result = class_coverage(torch.full((500,), 3), num_classes=10)
    assert result["class_entropy"] == 0.0
    assert result["classes_covered"] == 1
    assert result["class_histogram"][3] == 500


def test_classes_below_half_their_fair_share_are_not_covered():
    # Fair share 100 each: class 0 gets 49 (not covered), class 1 gets 50 (covered).
    predictions = torch.cat([torch.zeros(49), torch.ones(50), torch.full((901,), 2)]).long()
    result = class_coverage(predictions, num_classes=10)
    assert result["classes_covered"] == 2


def test_label_agreement_counts_matching_classes():
    requested = torch.tensor([0, 1, 2, 3])
    assert label_agreement(torch.tensor([0, 1, 2, 3]), requested) == 1.0
    assert label_agreement(torch.tensor([0, 1, 0, 0]), requested) == 0.5
