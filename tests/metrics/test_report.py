"""The whole report in the domain classifier's features: realistic, collapsed and conditional generators."""

import math

import pytest
import torch
from torch import nn

from handwriting_gan.data.base import to_signed_unit
from handwriting_gan.metrics.report import quality_metrics
from handwriting_gan.metrics.sampling import conditional_classes, draw_samples


class LookupGenerator(nn.Module):
    """A stand-in class-conditional generator: a real image of the requested class, chosen by z.

    `obey=False` makes one that ignores the requested class (always draws class 0).
    """

    latent_dim = 4

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, num_classes: int, obey: bool = True):
        super().__init__()
        self.num_classes = num_classes
        self.obey = obey
        per_class = min(int((labels == c).sum()) for c in range(num_classes))
        bank = torch.stack([images[labels == c][:per_class] for c in range(num_classes)])
        self.register_buffer("bank", to_signed_unit(bank))  # (classes, per_class, C, H, W)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if not self.obey:
            labels = torch.zeros_like(labels)
        pick = (z[:, 0].abs() * 1000).long() % self.bank.shape[1]
        return self.bank[labels, pick]


def test_the_floor_is_the_score_of_real_training_images(reference):
    pick = torch.randperm(512, generator=torch.Generator().manual_seed(0))[:256]  # the floor's subset
    values = quality_metrics(reference, reference.train[0][pick], groups=("fd", "manifold", "classes"))
    assert values["fd"] == pytest.approx(reference.fd_floor(256, seed=0), rel=1e-6)
    assert values["precision"] > 0.9 and values["recall"] > 0.9 and values["coverage"] > 0.9
    assert values["class_entropy"] > 0.95 * math.log(10) and values["classes_covered"] == 10


def test_a_collapsed_generator_scores_low_on_recall_coverage_and_class_entropy(reference):
    fresh = quality_metrics(reference, reference.train[0][:256])
    collapsed = quality_metrics(reference, reference.train[0][:1].repeat(256, 1, 1, 1))
    assert collapsed["recall"] < 0.05 and collapsed["coverage"] < 0.1
    assert collapsed["class_entropy"] == 0.0 and collapsed["classes_covered"] == 1
    assert collapsed["fd"] > 10 * fresh["fd"] and collapsed["kid"] > 10 * fresh["kid"]
    # Not a conditional generator: no requested classes to check.
    assert not {"label_agreement", "cas", "recall_per_class", "fd_per_class"} & collapsed.keys()


def test_noise_is_far_from_the_data(reference):
    noise = torch.randint(
        0, 256, (256, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    fresh = quality_metrics(reference, reference.train[0][:256], groups=("fd",))
    assert quality_metrics(reference, noise, groups=("fd",))["fd"] > 10 * fresh["fd"]


def test_a_conditional_generator_is_asked_for_every_class_and_checked_on_them(reference, tiny):
    generator = LookupGenerator(*reference.train, num_classes=10)
    assert conditional_classes(generator) == 10
    images, requested = draw_samples(generator, 200, generator.latent_dim, seed=1)
    assert torch.bincount(requested).tolist() == [20] * 10
    values = quality_metrics(reference, images, requested, cas_settings=tiny)
    assert values["label_agreement"] == 1.0
    assert values["cas"] == pytest.approx(values["cas_real"], abs=0.05) and values["cas"] > 0.9
    assert values["cas_num_generated"] == 200 == values["cas_num_real"]


def test_a_conditional_generator_that_ignores_the_class_fails_agreement_and_cas(reference, tiny):
    generator = LookupGenerator(*reference.train, num_classes=10, obey=False)
    images, requested = draw_samples(generator, 200, generator.latent_dim, seed=1)
    values = quality_metrics(reference, images, requested, ("label_agreement", "cas"), cas_settings=tiny)
    assert values["label_agreement"] == pytest.approx(0.1, abs=0.01)
    assert values["cas"] < 0.3 < 0.9 < values["cas_real"]


def test_a_conditional_generator_that_ignores_z_fails_the_per_class_metrics(reference):
    images, labels = reference.train
    first_of_each_class = torch.stack([torch.nonzero(labels == c)[0, 0] for c in range(10)])
    varied = LookupGenerator(images, labels, num_classes=10)
    collapsed = LookupGenerator(images[first_of_each_class], labels[first_of_each_class], num_classes=10)
    good = quality_metrics(reference, *draw_samples(varied, 200, 4, seed=1), groups=("fd", "per_class"))
    bad = quality_metrics(reference, *draw_samples(collapsed, 200, 4, seed=1), groups=("fd", "per_class"))
    assert good["per_class_classes"] == good["per_class_recall_classes"] == 10
    assert good["recall_per_class"] > 0.9 and good["fd_per_class"] < 2 * good["fd_per_class_floor"]
    assert bad["recall_per_class"] < 0.05 and bad["fd_per_class"] > 4 * good["fd_per_class"]
    assert bad["fd"] < 1.5 * good["fd"]  # all classes together still look varied to the global FD


def test_samples_are_reproducible_and_leave_the_global_random_state_alone():
    generator = nn.Sequential(nn.Linear(8, 784), nn.Tanh(), nn.Unflatten(1, (1, 28, 28)))
    state = torch.random.get_rng_state()
    first, labels = draw_samples(generator, 50, 8, seed=3, batch_size=16)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert labels is None and first.dtype == torch.uint8 and first.shape == (50, 1, 28, 28)
    assert torch.equal(first, draw_samples(generator, 50, 8, seed=3, batch_size=16)[0])
    # Another batch size gives the same noise; only the matmul's summation order may move a pixel across
    # a rounding edge, by one grey level (different noise would move most pixels by far more).
    other_batching = draw_samples(generator, 50, 8, seed=3, batch_size=7)[0]
    assert (first.int() - other_batching.int()).abs().max() <= 1
