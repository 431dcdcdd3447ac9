"""KID, precision/recall/density/coverage and the per-class metrics against brute-force references.

Each reference is written straight from its paper's definition with plain loops over points, slow but
easy to check by eye, and compared with the package on small random feature sets.
"""

import math

import numpy as np
import pytest
import torch

from handwriting_gan.metrics.kernel import kernel_distance
from handwriting_gan.metrics.manifold import manifold_metrics
from handwriting_gan.metrics.per_class import per_class_metrics


def points(n: int, dim: int = 6, shift: float = 0.0, scale: float = 1.0, seed: int = 0) -> torch.Tensor:
    return shift + scale * torch.randn(
        n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )


def reference_kid(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3 (Binkowski et al., 2018): the within-set means
    leave out i == j; the cross mean takes every pair, its two sets being independent."""
    m, n, d = len(x), len(y), x.shape[1]

    def kernel(a, b):
        return (float(np.dot(a, b)) / d + 1.0) ** 3

    within_x = sum(kernel(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    within_y = sum(kernel(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    across = sum(kernel(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return within_x + within_y - 2 * across


def reference_fd(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)), with Tr (S_a S_b)^(1/2) taken as the
    trace of the symmetric (S_a^(1/2) S_b S_a^(1/2))^(1/2), which eigh handles even when singular."""
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    values, vectors = np.linalg.eigh(cov_a)
    root_a = vectors @ np.diag(np.sqrt(np.clip(values, 0, None))) @ vectors.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum()
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * cross)


def reference_manifold(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    """Improved precision and recall (Kynkaanniemi et al., 2019), density and coverage (Naeem et al.,
    2020) for equal-size sets. A point's ball has the radius of its k-th nearest other point of its own
    set. Balls are open, as in the package and Naeem et al.'s code; Kynkaanniemi et al. write <=, which
    differs only on exact ties, and random features have none."""

    def distance(a, b):
        return float(np.sqrt(((a - b) ** 2).sum()))

    def radii(group):
        return [
            sorted(distance(p, q) for j, q in enumerate(group) if j != i)[k - 1] for i, p in enumerate(group)
        ]

    def balls_holding(point, centres, centre_radii):
        return sum(distance(point, centres[i]) < centre_radii[i] for i in range(len(centres)))

    real_radii, fake_radii = radii(real), radii(fake)
    return {
        "precision": np.mean([balls_holding(f, real, real_radii) > 0 for f in fake]),
        "recall": np.mean([balls_holding(r, fake, fake_radii) > 0 for r in real]),
        "density": sum(balls_holding(f, real, real_radii) for f in fake) / (k * len(fake)),
        "coverage": np.mean([any(distance(r, f) < real_radii[i] for f in fake) for i, r in enumerate(real)]),
    }


@pytest.mark.parametrize("shift", [0.0, 0.4])
def test_kid_is_the_unbiased_mmd_when_every_subset_is_the_whole_set(shift):
    real, fake = points(40, seed=1), points(40, shift=shift, seed=2)
    result = kernel_distance(real, fake, subsets=3)  # subset_size 1000 shrinks to the 40 points
    expected = reference_kid(real.numpy(), fake.numpy())
    assert result["kid_subset_size"] == 40
    assert result["kid"] == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert result["kid_std"] == pytest.approx(0.0, abs=1e-12)


def test_kid_averages_the_mmd_over_its_seeded_subsets():
    real, fake = points(60, seed=1), points(45, shift=0.3, scale=1.2, seed=2)
    result = kernel_distance(real, fake, subsets=4, subset_size=20, seed=3)
    # The subsets as kernel_distance documents them: per subset, real then generated indices, each the
    # head of a permutation drawn from one torch generator seeded by `seed`.
    generator = torch.Generator().manual_seed(3)
    scores = []
    for _ in range(4):
        pick_real = torch.randperm(60, generator=generator)[:20]
        pick_fake = torch.randperm(45, generator=generator)[:20]
        scores.append(reference_kid(real[pick_real].numpy(), fake[pick_fake].numpy()))
    assert result["kid_subset_size"] == 20
    assert result["kid"] == pytest.approx(np.mean(scores), rel=1e-9)
    assert result["kid_std"] == pytest.approx(np.std(scores), rel=1e-9)
    assert np.std(scores) > 0  # the subsets differ, so the spread is checked too


@pytest.mark.parametrize(
    ("shift", "scale", "k"), [(0.0, 1.0, 5), (0.5, 1.0, 3), (0.3, 0.6, 5), (0.3, 1.6, 4), (1.0, 1.0, 1)]
)
def test_manifold_metrics_follow_the_papers_definitions(shift, scale, k):
    real, fake = points(50, seed=1), points(50, shift=shift, scale=scale, seed=2)
    result = manifold_metrics(real, fake, k=k)
    expected = reference_manifold(real.numpy(), fake.numpy(), k)
    assert 0 < expected["precision"] < 1 or 0 < expected["recall"] < 1  # a case that can tell them apart
    for name, value in expected.items():
        assert result[name] == pytest.approx(value, abs=1e-6), name


def test_manifold_metrics_hold_for_features_far_from_the_origin():
    # ReLU features share a large positive offset; distances must not lose the ball edges to rounding.
    real, fake = (points(50, seed=1) + 1000.0).float(), (points(50, shift=0.5, seed=2) + 1000.0).float()
    expected = reference_manifold(real.double().numpy(), fake.double().numpy(), 5)
    for features in (torch.float32, torch.float64):  # the same values either way
        result = manifold_metrics(real.to(features), fake.to(features), k=5)
        for name, value in expected.items():
            assert result[name] == pytest.approx(value, abs=1e-6), (features, name)


def reference_per_class(test, test_labels, generated, requested, train, train_labels, k):
    recalls, distances, floors = [], [], []
    for label in sorted(set(requested.tolist())):
        real, fake = test[test_labels == label], generated[requested == label]
        if min(len(real), len(fake)) >= k + 1:
            recalls.append(reference_manifold(real, fake, k)["recall"])
        if min(len(real), len(fake)) >= 2:
            distances.append(reference_fd(real, fake))
            floors.append(reference_fd(real, train[train_labels == label]))
    return recalls, distances, floors


def test_per_class_metrics_are_the_means_of_a_loop_over_classes():
    # Per class: (test images, generated samples); the training split has as many images of each class
    # as there are generated samples, so the floor's subset is all of them.
    counts = {0: (12, 12), 1: (10, 10), 2: (8, 4), 3: (6, 1), 4: (0, 7), 5: (9, 0)}
    test, generated, train = [], [], []
    for label, (num_test, num_generated) in counts.items():
        test.append(points(num_test, dim=5, shift=3.0 * label, seed=10 + label))
        generated.append(points(num_generated, dim=5, shift=3.0 * label + 0.8, scale=0.5, seed=20 + label))
        train.append(points(num_generated, dim=5, shift=3.0 * label, seed=30 + label))
    test_labels = torch.tensor([label for label, (n, _) in counts.items() for _ in range(n)])
    requested = torch.tensor([label for label, (_, n) in counts.items() for _ in range(n)])
    test, generated, train, train_labels = torch.cat(test), torch.cat(generated), torch.cat(train), requested
    shuffle = torch.randperm(len(requested), generator=torch.Generator().manual_seed(0))
    generated, requested = generated[shuffle], requested[shuffle]

    result = per_class_metrics(test, test_labels, generated, requested, train, train_labels, k=5)
    arrays = (test, test_labels, generated, requested, train, train_labels)
    recalls, distances, floors = reference_per_class(*(a.numpy() for a in arrays), k=5)
    assert (
        (result["per_class_recall_classes"], result["per_class_classes"])
        == (len(recalls), len(distances))
        == (2, 3)
    )
    assert 0 < np.mean(recalls) < 1
    assert result["recall_per_class"] == pytest.approx(np.mean(recalls), abs=1e-6)
    assert result["fd_per_class"] == pytest.approx(np.mean(distances), rel=1e-6)
    assert result["fd_per_class_floor"] == pytest.approx(np.mean(floors), rel=1e-6)
    assert not math.isnan(result["fd_per_class_floor"])
