"""The training of the study's arms for one GAN run: the extra images each arm adds (classical copies,
the exported synthetic images, those that pass the confidence filter), and each arm's classifier,
trained and tested on the full real test split."""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from handwriting_gan.errors import ConfigError, DataError
from handwriting_gan.runs import RunFolder
from handwriting_gan.study.arms import KINDS, Arm
from handwriting_gan.study.settings import Study
from handwriting_gan.study.steps import Progress
from handwriting_gan.study.store import Results

if TYPE_CHECKING:  # torch loads once the checks of the command line have passed
    import torch

    from handwriting_gan.metrics.classifier import ClassifierSettings


class TrainingSets:
    """One GAN run's real training images and the extra images of each kind an arm can add, each kind
    made once, when an arm first needs it (the elastic transform of the classical copies is slow)."""

    def __init__(
        self, plan: Study, images: torch.Tensor, labels: torch.Tensor, export_dir: Path, seed: int
    ) -> None:
        self.plan, self.export_dir, self.seed = plan, export_dir, seed
        self.images, self.labels = images, labels

    def extra(self, arm: Arm) -> tuple[torch.Tensor, torch.Tensor]:
        """The extra images (and labels) `arm` adds to the real ones."""
        import torch

        parts = [self.kind(kind) for kind in arm.adds]
        if not parts:
            return self.images[:0], self.labels[:0]
        return torch.cat([images for images, _ in parts]), torch.cat([labels for _, labels in parts])

    def kind(self, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
        if kind not in KINDS:
            raise KeyError(f"no extra images of kind {kind!r}; the kinds are {sorted(KINDS)}")
        return getattr(self, kind)

    def describe(self, arm: Arm) -> str:
        """`40 real + 80 augmented + 61 synthetic`: the images of the arm's training set."""
        return " + ".join(
            [f"{len(self.images)} real", *(f"{len(self.kind(k)[1])} {KINDS[k]}" for k in arm.adds)]
        )

    @functools.cached_property
    def classical(self) -> tuple[torch.Tensor, torch.Tensor]:
        """`expansion` randomly augmented copies of each real image."""
        transform = instantiate_classical(self.plan)
        return classical_copies(self.images, self.labels, transform, self.plan.expansion, self.seed)

    @functools.cached_property
    def synthetic(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The run's exported synthetic images, `expansion` x per_class of each class."""
        from handwriting_gan.data.exports import read_export

        exported = read_export(self.export_dir)
        return exported.images, exported.labels

    @functools.cached_property
    def filtered(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The synthetic images the full-data domain classifier labels with at least filter_confidence."""
        images, labels = self.synthetic
        confident = confidences(self.export_dir) >= self.plan.filter_confidence
        return images[confident], labels[confident]

    @property
    def kept_fraction(self) -> float:
        return len(self.filtered[1]) / max(1, len(self.synthetic[1]))


def train_arms(plan: Study, per_class: int, seed: int, run: RunFolder, results: Results, progress: Progress):
    """Train and test the classifier of each of plan.arms for the finished, exported GAN run (per_class,
    seed), skipping the arms stored in `results` and storing each new one at once."""
    import torch

    from handwriting_gan.config import instantiate
    from handwriting_gan.metrics.cache import reference_data
    from handwriting_gan.metrics.classifier import accuracy

    label = f"per_class={per_class} seed={seed}"
    stored = results.run(per_class, seed)["arms"]
    sets = test = datamodule = None
    for arm in plan.arms:
        if arm.key in stored:
            progress.step(f"{label}: {arm.title} already trained and tested")
            continue
        if sets is None:
            datamodule = instantiate(run.load_config().dataset)
            sets = TrainingSets(plan, *datamodule.split(train=True), run.export_dir, seed)
            test = reference_data(datamodule).split(train=False)
        extra_images, extra_labels = sets.extra(arm)
        progress.step(f"{label}: {arm.title}: training the classifier on {sets.describe(arm)} images")
        classifier, epochs = fit_arm(
            torch.cat([sets.images, extra_images]),
            torch.cat([sets.labels, extra_labels]),
            datamodule.num_classes,
            plan.arm_classifier,
            plan.arm_steps,
            seed,
            plan.device,
        )
        stored[arm.key] = {
            "test_acc": accuracy(classifier, *test),
            "real_images": len(sets.images),
            "extra_images": len(extra_images),
            "epochs": epochs,
            "test_images": len(test[0]),
        }
        if arm.filtered:
            stored[arm.key]["kept_fraction"] = sets.kept_fraction
        results.save()


def fit_arm(
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    settings: ClassifierSettings,
    steps: int,
    seed: int,
    device: str,
):
    """The domain classifier's architecture trained on (images, labels) for about `steps` optimizer
    steps (whole epochs), whatever the training set's size; returns it and its number of epochs."""
    from handwriting_gan.metrics import classifier

    # The classifier's own min_steps rule gives the epochs: at least one, and as many as `steps` needs.
    settings = dataclasses.replace(settings, epochs=1, min_steps=steps, seed=seed)
    # fit_classifier logs up to ten epoch lines of its own: the study's progress line says what trains.
    level = classifier.log.level
    classifier.log.setLevel(logging.WARNING)
    try:
        epochs = settings.epochs_for(len(images))
        return classifier.fit_classifier(images, labels, num_classes, settings, device), epochs
    finally:
        classifier.log.setLevel(level)


def confidences(export_dir: Path) -> torch.Tensor:
    """The domain classifier's probability of each exported image's label, as the export wrote it (the
    npz format's `confidences`, what the export's min_confidence filters on)."""
    import numpy as np
    import torch

    from handwriting_gan.data.exports import NPZ_FILE

    path = export_dir / NPZ_FILE
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return torch.from_numpy(arrays["confidences"].astype(np.float32))
    except (OSError, ValueError, KeyError) as error:
        raise DataError(
            f"{path} holds no confidences ({error}); remove {export_dir} and run the study again to "
            f"export it anew."
        ) from None


# -- classical augmentation ------------------------------------------------------------------------
def instantiate_classical(plan: Study):
    """`classical`, built (the study builds it once before any work, so that a mistake in it is found
    first)."""
    from hydra.errors import InstantiationException

    from handwriting_gan.config import instantiate

    try:
        transform = instantiate(plan.classical)
    except InstantiationException as error:
        raise ConfigError(f"classical cannot be built: {str(error).splitlines()[0]}") from None
    if not callable(transform):
        raise ConfigError(f"classical builds a {type(transform).__name__}, which is not a transform.")
    return transform


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
