"""Classical augmentation: copies of real images under random shifts, rotations, scalings and an elastic
distortion, and its tuning, with the strengths and the number of copies chosen on a validation part of
the real training images, the only images a user with a few per class has. The study's baseline arm (b)
and the expand command's measurement use it, so that a gain over it means something: other
augmentations are held against the best classical augmentation the search finds, not one fixed guess.

The search (`classical_search` in conf/study.yaml and conf/expand.yaml): `trials` settings, the first
the untuned default (Simard et al. 2003's elastic alpha 34, sigma 4 with 10 degrees, 10% shifts and
scalings, and `expansion` copies), the others drawn at random from the ranges. Each is scored by the
classifier trained `steps` steps on the training part plus its copies, tested on the validation part
(`validation_fraction` of each class, at least one image, never a class's last). The best setting (the
first of equals) is then used with all the real images.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from handwriting_gan.errors import ConfigError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Classical:
    """One setting of classical augmentation: the transform's strengths and the copies per real image."""

    degrees: float
    translate: float
    scale: float
    elastic_alpha: float
    elastic_sigma: float
    copies: int

    def transform(self):
        """The torchvision v2 transform of this setting, for uint8 (C, H, W) images, fill 0 (the
        datasets' background: white ink on black)."""
        from torchvision.transforms import v2

        steps = [
            v2.RandomAffine(
                degrees=self.degrees,
                translate=(self.translate, self.translate),
                scale=(1.0 - self.scale, 1.0 + self.scale),
                fill=0,
            )
        ]
        if self.elastic_alpha > 0:
            steps.append(v2.ElasticTransform(alpha=self.elastic_alpha, sigma=self.elastic_sigma, fill=0))
        return v2.Compose(steps)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


#: The untuned default, the first setting every search tries (its copies are the study's `expansion`).
DEFAULT = {"degrees": 10.0, "translate": 0.1, "scale": 0.1, "elastic_alpha": 34.0, "elastic_sigma": 4.0}
RANGES = ("degrees", "translate", "scale", "elastic_alpha")


@dataclass(frozen=True)
class Search:
    """conf/study.yaml's classical_search, checked."""

    trials: int
    validation_fraction: float
    steps: int
    degrees: tuple[float, float]
    translate: tuple[float, float]
    scale: tuple[float, float]
    elastic_alpha: tuple[float, float]
    elastic_sigma: float
    copies: tuple[int, ...]

    @classmethod
    def from_mapping(cls, values: Mapping) -> Search:
        values = dict(values)
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        missing = sorted(known - set(values))
        if unknown or missing:
            raise ConfigError(
                f"classical_search has unknown keys {unknown} and lacks {missing}; it takes {sorted(known)} "
                f"(see conf/study.yaml)."
            )
        trials = values["trials"]
        if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
            raise ConfigError(
                f"classical_search.trials={trials} must be at least 1 (1: the untuned default only)."
            )
        fraction = values["validation_fraction"]
        if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction < 1:
            raise ConfigError(f"classical_search.validation_fraction={fraction} must be in (0, 1), e.g. 0.2.")
        steps = values["steps"]
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigError(
                f"classical_search.steps={steps} must be a positive number of steps (e.g. 300)."
            )
        ranges = {}
        for key in RANGES:
            pair = values[key]
            if (
                not isinstance(pair, Sequence)
                or len(pair) != 2
                or any(isinstance(v, bool) or not isinstance(v, int | float) or v < 0 for v in pair)
                or pair[0] > pair[1]
            ):
                raise ConfigError(
                    f"classical_search.{key}={list(pair) if isinstance(pair, Sequence) else pair} must be "
                    f"[low, high] with 0 <= low <= high."
                )
            ranges[key] = (float(pair[0]), float(pair[1]))
        if ranges["scale"][1] >= 1 or ranges["translate"][1] >= 1:
            raise ConfigError(
                "classical_search.scale and .translate must stay below 1 (fractions of the side)."
            )
        copies = values["copies"]
        if (
            not isinstance(copies, Sequence)
            or not copies
            or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in copies)
        ):
            raise ConfigError(
                f"classical_search.copies={copies} must be a list of positive counts, e.g. [5,10,20]."
            )
        sigma = values["elastic_sigma"]
        if isinstance(sigma, bool) or not isinstance(sigma, int | float) or sigma <= 0:
            raise ConfigError(f"classical_search.elastic_sigma={sigma} must be a positive number (e.g. 4).")
        return cls(
            trials=trials,
            validation_fraction=float(fraction),
            steps=steps,
            elastic_sigma=float(sigma),
            copies=tuple(int(c) for c in copies),
            **ranges,
        )

    def candidates(self, expansion: int, seed: int) -> list[Classical]:
        """The settings tried: the default with `expansion` copies, then trials - 1 drawn by `seed`."""
        first = Classical(**DEFAULT, copies=expansion)
        random = np.random.default_rng([seed, 0xC1A55])
        drawn = [
            Classical(
                **{key: round(float(random.uniform(*getattr(self, key))), 3) for key in RANGES},
                elastic_sigma=self.elastic_sigma,
                copies=int(random.choice(self.copies)),
            )
            for _ in range(self.trials - 1)
        ]
        return [first, *drawn]


def validation_split(labels: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """True for the images of each class held out to score the settings: round(fraction x its size),
    at least one, never all (a class of one image keeps it for training)."""
    import torch

    held = torch.zeros(len(labels), dtype=torch.bool)
    for label in torch.unique(labels).tolist():
        members = torch.nonzero(labels == label).flatten()
        count = min(len(members) - 1, max(1, math.floor(fraction * len(members) + 0.5)))
        order = np.random.default_rng([seed, label, 0x7A1]).permutation(len(members))
        held[members[torch.from_numpy(order[:count])]] = True
    return held


def tune(
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    search: Search,
    expansion: int,
    fit: Callable,
    score: Callable[..., float],
    seed: int,
    say=lambda message: None,
) -> tuple[Classical, list[dict]]:
    """The best of search.candidates on the validation part of (images, labels), and every trial's
    {"setting", "validation_acc"}. `fit(images, labels, steps)` trains a classifier (e.g. the study's
    arms' recipe) and `score(classifier, images, labels)` is its accuracy on the validation part (e.g.
    metrics.classifier.accuracy): passed in, since the classifier belongs to the metrics above."""
    import torch

    held = validation_split(labels, search.validation_fraction, seed)
    candidates = search.candidates(expansion, seed)
    if not held.any():  # one image per class: nothing to validate on, the default stands
        return candidates[0], []
    train_images, train_labels = images[~held], labels[~held]
    trials = []
    for number, setting in enumerate(candidates, 1):
        extra_images, extra_labels = classical_copies(
            train_images, train_labels, setting.transform(), setting.copies, seed
        )
        classifier = fit(
            torch.cat([train_images, extra_images]), torch.cat([train_labels, extra_labels]), search.steps
        )
        accuracy = score(classifier, images[held], labels[held])
        trials.append({"setting": setting.as_dict(), "validation_acc": accuracy})
        say(f"trial {number}/{len(candidates)}: validation accuracy {100 * accuracy:.1f}% with {setting}")
    best = max(range(len(trials)), key=lambda i: (trials[i]["validation_acc"], -i))
    return candidates[best], trials


# -- classical augmentation ------------------------------------------------------------------------
@contextmanager
def one_thread() -> Iterator[None]:
    """Per-image transforms of a small image are too little work to split across threads: starting
    the threads costs more than the transform, most of all on a machine busy with other work."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def classical_copies(
    images: torch.Tensor, labels: torch.Tensor, transform: Callable, copies: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """`copies` augmented versions of every uint8 image (N, C, H, W), each with its own random parameters
    drawn from `seed`, and their labels: copy k of image i is at k * N + i."""
    import torch

    with torch.random.fork_rng(devices=[]), one_thread():
        torch.manual_seed(seed)
        augmented = [transform(image) for _ in range(copies) for image in images]
    if augmented and (augmented[0].dtype != images.dtype or augmented[0].shape != images.shape[1:]):
        raise ConfigError(
            f"classical turns {images.dtype} images of {list(images.shape[1:])} into {augmented[0].dtype} "
            f"ones of {list(augmented[0].shape)}; it must keep their type and size (transforms of "
            f"torchvision.transforms.v2 that move pixels, not ToDtype or Resize)."
        )
    if not augmented:
        return images[:0], labels[:0]
    return torch.stack(augmented), labels.repeat(copies)
