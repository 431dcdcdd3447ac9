"""FD and KID on feature sets with known answers: identical, matched, shifted, and small sets."""

import numpy as np
import pytest
import scipy.linalg
import torch

from handwriting_gan.metrics.frechet import frechet_distance
from handwriting_gan.metrics.kernel import kernel_distance


def gaussian(n: int, dim: int = 16, shift: float = 0.0, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    mixing = torch.randn(dim, dim, generator=torch.Generator().manual_seed(99)) / dim**0.5
    return torch.randn(n, dim, generator=generator) @ mixing + shift


def scipy_frechet(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def test_fd_of_identical_sets_is_zero():
    features = gaussian(500)
    assert frechet_distance(features, features.clone()) == pytest.approx(0.0, abs=1e-6)


def test_fd_matches_the_textbook_formula_in_float64():
    a, b = gaussian(400, seed=1), gaussian(300, shift=0.3, seed=2)
    assert frechet_distance(a, b) == pytest.approx(
        scipy_frechet(a.double().numpy(), b.double().numpy()), rel=1e-6
    )


def test_fd_grows_with_the_shift_between_distributions():
    real = gaussian(1000, seed=1)
    matched = frechet_distance(real, gaussian(1000, seed=2))
    shifted = [frechet_distance(real, gaussian(1000, shift=s, seed=2)) for s in (0.25, 0.5, 1.0)]
    assert matched < shifted[0] < shifted[1] < shifted[2]
    # A mean shift of s in every one of 16 dimensions adds 16 s^2.
    assert shifted[2] == pytest.approx(matched + 16.0, rel=0.1)


def test_kid_is_near_zero_for_matched_sets_and_grows_with_a_shift():
    real = gaussian(600, seed=1)
    matched = kernel_distance(real, gaussian(600, seed=2), subsets=20, subset_size=200)
    shifted = kernel_distance(real, gaussian(600, shift=0.5, seed=2), subsets=20, subset_size=200)
    assert abs(matched["kid"]) < 3 * matched["kid_std"] + 1e-3
    assert shifted["kid"] > matched["kid"] + 5 * shifted["kid_std"]


def test_kid_subset_size_adapts_to_small_sets():
    small, larger = gaussian(30, seed=1), gaussian(50, seed=2)
    result = kernel_distance(small, larger)  # asks for 1000 per subset
    assert result["kid_subset_size"] == 30
    assert np.isfinite(result["kid"])
    assert kernel_distance(gaussian(2000), gaussian(3000), subsets=2)["kid_subset_size"] == 1000


def test_kid_is_reproducible_for_a_seed():
    a, b = gaussian(300, seed=1), gaussian(300, shift=0.2, seed=2)
    assert kernel_distance(a, b, subsets=5, subset_size=100, seed=3) == kernel_distance(
        a, b, subsets=5, subset_size=100, seed=3
    )
