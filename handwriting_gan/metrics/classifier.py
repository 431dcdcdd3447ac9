"""The domain classifier: a small CNN trained on a dataset's training split, and its training recipe.

Its penultimate layer (`features`) is the feature space of every distance in this package; its
predictions drive class coverage, label agreement and CAS.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from handwriting_gan.data.base import to_signed_unit
from handwriting_gan.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassifierSettings:
    """Architecture and training recipe; all of it is part of the cache key.

    The defaults are small enough to train in minutes on a CPU and still read MNIST's test split
    near the accuracy of much larger networks (docs/results/quality.md has the figures).
    """

    channels: tuple[int, ...] = (16, 32)
    feature_dim: int = 128
    epochs: int = 3
    # At least this many optimizer steps (more epochs) on a small dataset: a few epochs of a few hundred
    # images are a handful of steps, too few for the classifier to learn the classes.
    min_steps: int = 1000
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    dropout: float = 0.25
    # Random translations of up to this many pixels during training; handwriting is rarely centred.
    max_shift: int = 2
    seed: int = 0

    @classmethod
    def from_mapping(cls, values: Mapping | None) -> ClassifierSettings:
        """Settings from a config mapping; missing keys keep their defaults, unknown keys are an error."""
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"classifier settings {unknown} are unknown; the classifier takes {sorted(known)}."
            )
        if "channels" in values:
            values["channels"] = tuple(int(c) for c in values["channels"])
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        if not self.channels or any(c <= 0 for c in self.channels):
            raise ConfigError(f"classifier.channels={list(self.channels)} must be positive widths.")
        for name in ("feature_dim", "epochs", "batch_size"):
            if int(getattr(self, name)) <= 0:
                raise ConfigError(f"classifier.{name}={getattr(self, name)} must be a positive integer.")
        if int(self.min_steps) < 0:
            raise ConfigError(f"classifier.min_steps={self.min_steps} must be 0 or more optimizer steps.")
        if float(self.lr) <= 0:
            raise ConfigError(f"classifier.lr={self.lr} must be a positive learning rate, e.g. 3e-3.")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ConfigError(f"classifier.dropout={self.dropout} must be in [0, 1).")
        if int(self.max_shift) < 0:
            raise ConfigError(f"classifier.max_shift={self.max_shift} must be 0 or more pixels.")

    def epochs_for(self, num_images: int) -> int:
        """`epochs`, or more when that many epochs of `num_images` make fewer than `min_steps` steps."""
        steps_per_epoch = math.ceil(int(num_images) / self.batch_size)
        return max(int(self.epochs), math.ceil(int(self.min_steps) / max(1, steps_per_epoch)))

    def as_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values["channels"] = list(self.channels)
        return values


#: The recipe used unless a config says otherwise (immutable, so safe as a default argument).
DEFAULT_SETTINGS = ClassifierSettings()


class DomainClassifier(nn.Module):
    """[conv 3x3, BatchNorm, ReLU, max-pool 2] per width in `channels` -> Linear -> ReLU (the features)
    -> Dropout -> Linear (class logits). Takes uint8 images (N, C, H, W)."""

    def __init__(
        self,
        image_shape: Sequence[int],
        num_classes: int,
        channels: Sequence[int] = (16, 32),
        feature_dim: int = 128,
        dropout: float = 0.25,
    ) -> None:
        super().__init__()
        if int(num_classes) < 2:
            raise ConfigError(f"a domain classifier needs at least 2 classes, the dataset has {num_classes}.")
        self.image_shape = tuple(int(s) for s in image_shape)
        self.num_classes = int(num_classes)
        self.num_features = int(feature_dim)
        layers: list[nn.Module] = []
        width_in, height, width = self.image_shape
        for width_out in channels:
            layers += [
                nn.Conv2d(width_in, int(width_out), 3, padding=1, bias=False),
                nn.BatchNorm2d(int(width_out)),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            width_in, height, width = int(width_out), height // 2, width // 2
        if height == 0 or width == 0:
            raise ConfigError(
                f"classifier.channels has {len(channels)} pooling stages, too many for "
                f"{list(self.image_shape)} images; use fewer widths."
            )
        self.body = nn.Sequential(
            *layers,
            nn.Flatten(),
            nn.Linear(width_in * height * width, self.num_features),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.num_features, self.num_classes))

    @classmethod
    def build(cls, image_shape: Sequence[int], num_classes: int, settings: ClassifierSettings):
        return cls(image_shape, num_classes, settings.channels, settings.feature_dim, settings.dropout)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer activations (N, num_features) of uint8 or [-1, 1] float images."""
        if images.dtype == torch.uint8:
            images = to_signed_unit(images)
        return self.body(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


@torch.no_grad()
def extract(
    classifier: DomainClassifier, images: torch.Tensor, batch_size: int = 1000
) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (N, D) float32, predicted classes (N,)) of uint8 images, on the classifier's device."""
    classifier.eval()
    device = next(classifier.parameters()).device
    features, predictions = [], []
    for start in range(0, len(images), batch_size):
        batch = classifier.features(images[start : start + batch_size].to(device))
        features.append(batch)
        predictions.append(classifier.head(batch).argmax(dim=1))
    return torch.cat(features), torch.cat(predictions)


def accuracy(classifier: DomainClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of `images` the classifier labels correctly."""
    _, predictions = extract(classifier, images)
    return float((predictions.cpu() == labels.cpu()).double().mean())


def predict(classifier: DomainClassifier, images: torch.Tensor, batch_size: int = 2000):
    """(labels, confidence: the softmax probability of each label) of uint8 images, on the CPU."""
    classifier.eval()
    device = next(classifier.parameters()).device
    parts = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = to_signed_unit(images[start : start + batch_size].to(device))
            parts.append(torch.softmax(classifier(batch), dim=1).cpu())
    confidence, labels = (
        torch.cat(parts).max(dim=1) if parts else (torch.zeros(0), torch.zeros(0, dtype=torch.int64))
    )
    return labels, confidence


def shift(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Each image translated by its own random whole-pixel offset in [-max_shift, max_shift]^2."""
    n, _, height, width = images.shape
    padded = F.pad(images, (max_shift,) * 4, value=-1.0)  # -1: blank paper
    offsets = torch.randint(0, 2 * max_shift + 1, (2, n), generator=generator).to(images.device)
    rows = (torch.arange(height, device=images.device) + offsets[0, :, None])[:, None, :, None]
    cols = (torch.arange(width, device=images.device) + offsets[1, :, None])[:, None, None, :]
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    channel = torch.arange(images.shape[1], device=images.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def fit_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    settings: ClassifierSettings,
    device: str | torch.device = "cpu",
) -> DomainClassifier:
    """Train a fresh classifier on uint8 `images` with `labels`; returns it in eval mode.

    Deterministic for given settings on a given device, and the caller's random state is untouched.
    """
    device = torch.device(device)
    steps_per_epoch = math.ceil(len(images) / settings.batch_size)
    epochs = settings.epochs_for(len(images))
    log_every = max(1, epochs // 10)  # ten lines at most: a small set trains for hundreds of epochs
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(settings.seed)
        generator = torch.Generator().manual_seed(settings.seed)
        model = DomainClassifier.build(images.shape[1:], num_classes, settings).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=settings.lr, total_steps=epochs * steps_per_epoch
        )
        model.train()
        for epoch in range(epochs):
            order = torch.randperm(len(images), generator=generator)
            for start in range(0, len(images), settings.batch_size):
                index = order[start : start + settings.batch_size]
                batch = to_signed_unit(images[index].to(device))
                if settings.max_shift:
                    batch = shift(batch, settings.max_shift, generator)
                loss = F.cross_entropy(model(batch), labels[index].to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
            if (epoch + 1) % log_every and epoch + 1 < epochs:
                continue
            log.info(
                "classifier epoch %d/%d: loss %.4f (%.0f s)",
                epoch + 1,
                epochs,
                loss.item(),
                time.perf_counter() - started,
            )
    return model.eval()


def fit_for_steps(
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    settings: ClassifierSettings,
    steps: int,
    seed: int,
    device: str | torch.device,
) -> tuple[DomainClassifier, int]:
    """The classifier of `settings` trained on (images, labels) for about `steps` optimizer steps (whole
    epochs), whatever the training set's size, quietly; returns it and its number of epochs. Sets of
    different sizes (real images alone, or with augmented copies) thus train equally long."""
    # The min_steps rule gives the epochs: at least one, and as many as `steps` needs.
    settings = dataclasses.replace(settings, epochs=1, min_steps=steps, seed=seed)
    # fit_classifier logs up to ten epoch lines: the caller's progress line says what trains.
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        return fit_classifier(images, labels, num_classes, settings, device), settings.epochs_for(len(images))
    finally:
        log.setLevel(level)


def settings_for_steps(value, base: ClassifierSettings) -> tuple[int, ClassifierSettings]:
    """A command's `arm_classifier` setting, checked: `steps` and changes to the `base` recipe; returns
    (steps, the changed recipe). Epochs, min_steps and the seed are not its keys: fit_for_steps sets them
    from the steps and the caller's seed."""
    from omegaconf import DictConfig, OmegaConf

    from handwriting_gan.shell import check_count

    changes = OmegaConf.to_container(value) if isinstance(value, DictConfig) else value
    if not isinstance(changes, dict):
        raise ConfigError(f"arm_classifier={value} must be a mapping, e.g. {{steps: 1000, batch_size: 64}}.")
    changes = dict(changes)
    steps = check_count("arm_classifier.steps", changes.pop("steps", None), 1, " (e.g. 1000)")
    known = {field.name for field in dataclasses.fields(ClassifierSettings)} - {"epochs", "min_steps", "seed"}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ConfigError(
            f"arm_classifier has unknown keys {unknown}; it takes steps and any of {sorted(known)} "
            f"(epochs and min_steps follow from steps; the seed is the command's own)."
        )
    try:
        return steps, ClassifierSettings.from_mapping({**base.as_dict(), **changes})
    except ConfigError as error:
        raise ConfigError(f"arm_classifier: {error}") from None
