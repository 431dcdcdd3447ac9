"""All quality metrics of a set of generated images against a dataset's real splits, in one call.

Real test features are the reference of FD, KID, the k-NN metrics and the per-class metrics; training
features serve the real-vs-real floors and memorization. Everything is measured in the domain
classifier's feature space.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cached_property

import lightning as L
import torch

from handwriting_gan.errors import ConfigError
from handwriting_gan.metrics.cache import CachedClassifier, reference_data
from handwriting_gan.metrics.cas import classification_accuracy_score
from handwriting_gan.metrics.classes import class_coverage, label_agreement
from handwriting_gan.metrics.classifier import DEFAULT_SETTINGS, ClassifierSettings, extract
from handwriting_gan.metrics.frechet import frechet_distance
from handwriting_gan.metrics.kernel import kernel_distance
from handwriting_gan.metrics.manifold import manifold_metrics
from handwriting_gan.metrics.memorization import memorization
from handwriting_gan.metrics.per_class import per_class_metrics

#: Metric groups; the last three need a class-conditional generator (cas, which trains a classifier,
#: is the slowest of all).
GROUPS = ("fd", "kid", "manifold", "classes", "memorization", "label_agreement", "cas", "per_class")
NEAREST_NEIGHBOURS = 5


def check_groups(groups: Iterable[str]) -> tuple[str, ...]:
    groups = tuple(str(g) for g in groups)
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise ConfigError(f"metrics {unknown} are unknown; choose from {list(GROUPS)}.")
    return groups


class RealReference:
    """A dataset's splits, its domain classifier and the real features, extracted once.

    `train` is the reference data's training split (every real image: see `reference_data`), used by
    the floors, CAS's real baseline and the per-class floors; `seen` is what the GAN trained on (a
    few-shot subset; for an expanded set, its real and synthetic images), used by memorization.
    """

    def __init__(self, datamodule: L.LightningDataModule, cached: CachedClassifier, device="cpu") -> None:
        self.classifier = cached.classifier.to(device).eval()
        self.classifier_test_acc = cached.test_acc
        self.num_classes = datamodule.num_classes
        reference = reference_data(datamodule)
        self.train = reference.split(train=True)
        self.test = reference.split(train=False)
        self.seen = datamodule.split(train=True)
        self.test_features, _ = extract(self.classifier, self.test[0])

    @cached_property
    def train_features(self) -> torch.Tensor:
        return extract(self.classifier, self.train[0])[0]

    @cached_property
    def seen_features(self) -> torch.Tensor:
        if self.seen[0] is self.train[0]:
            return self.train_features
        return extract(self.classifier, self.seen[0])[0]

    def fd_floor(self, num_samples: int, seed: int = 0) -> float:
        """FD between `num_samples` real training images (a seeded subset; all when there are fewer)
        and the test split: what a generator that drew real digits would score at that sample size."""
        pick = torch.randperm(len(self.train[0]), generator=torch.Generator().manual_seed(seed))
        return frechet_distance(self.test_features, self.train_features[pick[:num_samples].to(self.device)])

    @property
    def device(self) -> torch.device:
        return self.test_features.device


def quality_metrics(
    reference: RealReference,
    images: torch.Tensor,
    requested_labels: torch.Tensor | None = None,
    groups: Iterable[str] = GROUPS,
    seed: int = 0,
    cas_settings: ClassifierSettings = DEFAULT_SETTINGS,
) -> dict:
    """The metrics of `groups` for uint8 generated `images`; label_agreement, cas and per_class only
    when the `requested_labels` of a class-conditional generator are given."""
    groups = check_groups(groups)
    features, predictions = extract(reference.classifier, images)
    values: dict = {}
    if "fd" in groups:
        values["fd"] = frechet_distance(reference.test_features, features)
    if "kid" in groups:
        values.update(kernel_distance(reference.test_features, features, seed=seed))
    if "manifold" in groups:
        values.update(manifold_metrics(reference.test_features, features, NEAREST_NEIGHBOURS, seed=seed))
    if "classes" in groups:
        values.update(class_coverage(predictions, reference.num_classes))
    if "memorization" in groups:
        values.update(memorization(features, reference.seen_features, reference.test_features))
    if requested_labels is not None and "label_agreement" in groups:
        values["label_agreement"] = label_agreement(predictions, requested_labels)
    if requested_labels is not None and "cas" in groups:
        values.update(
            classification_accuracy_score(
                images,
                requested_labels,
                reference.train,
                reference.test,
                reference.num_classes,
                cas_settings,
                reference.device,
                seed=seed,
            )
        )
    if requested_labels is not None and "per_class" in groups:
        values.update(
            per_class_metrics(
                reference.test_features,
                reference.test[1],
                features,
                requested_labels,
                reference.train_features,
                reference.train[1],
                NEAREST_NEIGHBOURS,
                seed=seed,
            )
        )
    return values
