"""The in-memory image DataModule every dataset builds on (its batch order is data/batches.py).

A dataset is loaded once into a uint8 tensor (N, C, H, W) with int64 labels. Batches are cut from
that tensor by index in one operation and scaled to [-1, 1] after the transfer to the device, so the
training loop never touches PIL or per-image transforms.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from handwriting_gan.data.batches import (
    PairedBatches,
    ResumableLoader,
    SemiSupervisedBatches,
    ShuffledBatches,
)
from handwriting_gan.errors import ConfigError, DataError

log = logging.getLogger(__name__)

#: The label of an unlabelled image in a semi-supervised batch.
UNLABELLED = -1
# Mixed into the seed of the labelled images' draw, apart from the `per_class` draw.
LABELS_STREAM = 2


@dataclass(frozen=True)
class LabelSplit:
    """The training split as the semi-supervised game sees it: labelled (images, labels), validation
    (images, labels) and unlabelled images with no labels. `source_index` gives each unlabelled image's
    index in where it came from: the training split (labels hidden) or the pool's sorted file listing."""

    labelled: tuple[torch.Tensor, torch.Tensor]
    validation: tuple[torch.Tensor, torch.Tensor]
    unlabelled: torch.Tensor
    source_index: torch.Tensor


class ImageDataModule(L.LightningDataModule):
    """Base for every dataset: subclasses implement `_load(train)` returning uint8 images and labels.

    `classes` keeps only the named classes in both splits; `per_class` keeps that many training images
    of each class, picked by `seed` (the few-shot regime). Labels keep their dataset-wide values and
    `class_names` stays the full table, so a label means the same class in every subset, and anything
    indexed by label (a classifier trained on the whole dataset, exported folder names) still applies.

    `device_resident`: on a GPU, the whole training split is copied there once (uint8, 1 byte a pixel:
    full MNIST is 47 MB) and every batch is cut there, with no host round trip per step. `auto` does so
    whenever the trainer runs on a GPU; `false` keeps the split in host memory.
    """

    #: Shown under sample grids and used as exported folder names; subclasses set it.
    class_names: Sequence[str] = ()

    def __init__(
        self,
        batch_size: int,
        image_shape: Sequence[int],
        sample_grid: int,
        seed: int = 0,
        drop_last: bool = True,
        classes: Sequence[str | int] | str | int | None = None,
        per_class: int | None = None,
        device_resident: bool | str = "auto",
        labels_per_class: int | None = None,
        labels_validation: int = 0,
    ) -> None:
        super().__init__()
        if device_resident not in ("auto", True, False):
            raise ConfigError(
                f"dataset.device_resident={device_resident} is not allowed: expected auto, true or false."
            )
        self.device_resident = device_resident
        if int(batch_size) <= 0:
            raise ConfigError(f"dataset.batch_size={batch_size} must be a positive integer.")
        if int(sample_grid) <= 0:
            raise ConfigError(f"dataset.sample_grid={sample_grid} must be a positive integer.")
        if len(image_shape) != 3 or any(int(s) <= 0 for s in image_shape):
            raise ConfigError(
                f"dataset.image_shape={list(image_shape)} must be three positive sizes [C, H, W]."
            )
        self.batch_size = int(batch_size)
        self.image_shape = tuple(int(s) for s in image_shape)
        self.sample_grid = int(sample_grid)
        self.seed = int(seed)
        self.drop_last = drop_last
        self.classes = _class_list(classes)
        if per_class is not None and int(per_class) <= 0:
            raise ConfigError(
                f"dataset.per_class={per_class} must be a positive number of training images per class, "
                f"or null to keep them all."
            )
        self.per_class = None if per_class is None else int(per_class)
        if labels_per_class is not None and (
            isinstance(labels_per_class, bool)
            or not isinstance(labels_per_class, int)
            or labels_per_class < 1
        ):
            raise ConfigError(
                f"dataset.labels_per_class={labels_per_class} must be a positive number of labelled training "
                f"images per class (e.g. 10; the rest of the training split is unlabelled), or null."
            )
        if (
            isinstance(labels_validation, bool)
            or not isinstance(labels_validation, int)
            or labels_validation < 0
        ):
            raise ConfigError(
                f"dataset.labels_validation={labels_validation} must be 0 or a number of labelled images per "
                f"class held out for validation."
            )
        if labels_per_class is not None and labels_validation >= labels_per_class:
            raise ConfigError(
                f"dataset.labels_validation={labels_validation} must be below dataset.labels_per_class="
                f"{labels_per_class}: at least one labelled image per class must stay for training."
            )
        self.labels_per_class = labels_per_class
        self.labels_validation = int(labels_validation)
        self._label_split: LabelSplit | None = None
        self._announced = False
        self._splits: dict[bool, tuple[torch.Tensor, torch.Tensor]] = {}
        self._train_sampler: ShuffledBatches | None = None
        #: True: training batches are pairs of images of one class (PairedBatches), what an
        #: image-conditional augmenter trains on; the training command sets it for such a model.
        self.pairs = False

    # -- what a subclass provides -------------------------------------------------------------
    def _load(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (uint8 images of shape (N, C, H, W) or (N, H, W), int64 labels of shape (N,))."""
        raise NotImplementedError

    # -- splits --------------------------------------------------------------------------------
    def split(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The training (GAN) or held-out test split as (uint8 images (N,C,H,W), int64 labels)."""
        if train not in self._splits:
            kept = self.selected_labels  # a bad dataset.classes fails before any download
            images, labels = self._load(train)
            if images.ndim == 3:
                images = images.unsqueeze(1)
            if images.dtype != torch.uint8:
                raise DataError(f"{type(self).__name__} produced {images.dtype} images, not uint8.")
            if tuple(images.shape[1:]) != self.image_shape:
                raise DataError(
                    f"{type(self).__name__} images have shape {list(images.shape[1:])} but "
                    f"dataset.image_shape={list(self.image_shape)}; set dataset.image_shape to match."
                )
            if len(images) != len(labels):
                raise DataError(f"{type(self).__name__}: {len(images)} images but {len(labels)} labels.")
            labels = labels.to(torch.int64)
            chosen = self._subset(labels, kept, per_class=self.per_class if train else None)
            if chosen is not None:
                images, labels = images[chosen], labels[chosen]
            self._splits[train] = (images.contiguous(), labels)
        return self._splits[train]

    def reference_data(self) -> ImageDataModule:
        """The real data a GAN trained on this dataset is measured with: this dataset with every training
        image (`per_class` dropped). The domain classifier, the real-vs-real floors and the real CAS
        baseline come from it, so a few-shot run is judged as a full-data one is; memorization still
        compares with the images the GAN saw."""
        if self.per_class is None:
            return self
        full = copy.copy(self)
        full.per_class = None
        full._splits = {train: split for train, split in self._splits.items() if not train}
        return full

    @property
    def num_classes(self) -> int:
        """The size of the label space: every class of the dataset, whether `classes` keeps it or not."""
        return len(self.class_names)

    @property
    def selected_labels(self) -> tuple[int, ...]:
        """The labels `dataset.classes` keeps, in the order it names them (all labels when it is null)."""
        if self.classes is None:
            return tuple(range(self.num_classes))
        index = {str(name): label for label, name in enumerate(self.class_names)}
        unknown = [name for name in self.classes if name not in index]
        if unknown:
            raise ConfigError(
                f"dataset.classes={list(self.classes)} names {unknown}, which {type(self).__name__} does "
                f"not have. Its classes are: {' '.join(map(str, self.class_names))}. Name classes from "
                f"that list, e.g. dataset.classes=[{','.join(map(str, self.class_names[:2]))}]."
            )
        return tuple(index[name] for name in self.classes)

    def _subset(
        self, labels: torch.Tensor, kept: tuple[int, ...], per_class: int | None
    ) -> torch.Tensor | None:
        """Sorted indices of the images kept by `classes` and `per_class`; None when all are kept."""
        if self.classes is None and per_class is None:
            return None
        members = {label: torch.nonzero(labels == label).flatten() for label in kept}
        if per_class is not None:
            fewest = min(kept, key=lambda label: len(members[label]))
            if len(members[fewest]) < per_class:
                most = len(members[fewest])
                raise ConfigError(
                    f"dataset.per_class={per_class} asks for {per_class} training images of every class, "
                    f"but class {self.class_names[fewest]!r} of {type(self).__name__} has only {most}, "
                    f"the most available for the selected classes. Use dataset.per_class={most} or "
                    f"less, or leave that class out with dataset.classes."
                )
            for label, indices in members.items():
                # Seeded by (seed, label): a class's picks do not depend on which other classes are kept,
                # and a smaller per_class picks a subset of a larger one (SeedSequence needs seed >= 0).
                order = np.random.default_rng([self.seed % 2**63, label]).permutation(len(indices))
                members[label] = indices[torch.from_numpy(order[:per_class])]
        return torch.sort(torch.cat(list(members.values()))).values

    # -- labelled and unlabelled images (the semi-supervised game) ------------------------------
    def _unlabelled_pool(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """A separate pool of unlabelled images as (uint8 images (N, C, H, W), each one's index in the
        pool's own listing), or None; dataset=folder's `unlabeled` provides one."""
        return None

    @property
    def semi_supervised(self) -> bool:
        """Whether training batches mix labelled and unlabelled images (label UNLABELLED)."""
        return self.labels_per_class is not None or self._has_pool()

    def _has_pool(self) -> bool:
        return False

    def label_split(self) -> LabelSplit:
        """The training split as labelled, validation and unlabelled images, drawn once by `seed`.

        With `labels_per_class=K`, K training images of each class keep their labels (`labels_validation`
        of them are held for validation) and every other training image is unlabelled; its label is kept
        out of the split (`hidden_labels` reads it for the oracle arm and the tests only). With a separate
        pool, the whole training split is labelled and the pool is the unlabelled part."""
        if self._label_split is None:
            images, labels = self.split(train=True)
            pool = self._unlabelled_pool()
            if pool is not None and self.labels_per_class is not None:
                raise ConfigError(
                    "dataset.labels_per_class and dataset.unlabeled both set: hide labels of the labelled "
                    "folder, or add a folder of unlabelled images, not both."
                )
            kept = self.labels_per_class or None
            picks = self._label_picks(labels, kept)
            validation = torch.zeros(len(labels), dtype=torch.bool)
            labelled = torch.zeros(len(labels), dtype=torch.bool)
            for chosen in picks:
                validation[chosen[: self.labels_validation]] = True
                labelled[chosen[self.labels_validation :]] = True
            if pool is None:
                rest = torch.nonzero(~(labelled | validation)).flatten()
                unlabelled, source_index = images[rest], rest
                self._hidden = labels[rest]
            else:
                (unlabelled, source_index), self._hidden = pool, None
            self._label_split = LabelSplit(
                labelled=(images[labelled], labels[labelled]),
                validation=(images[validation], labels[validation]),
                unlabelled=unlabelled,
                source_index=source_index,
            )
        return self._label_split

    def hidden_labels(self) -> torch.Tensor | None:
        """The true labels of the unlabelled images that `labels_per_class` hid, in `label_split` order;
        None for a separate pool. For the oracle arm and tests: nothing that trains reads them."""
        self.label_split()
        return self._hidden

    def _label_picks(self, labels: torch.Tensor, per_class: int | None) -> list[torch.Tensor]:
        """Per class, its images to keep labelled in a seeded order (all of them when `per_class` is None):
        a class's picks depend on (seed, label) alone, in their own stream apart from `per_class`."""
        picks = []
        for label in self.selected_labels:
            members = torch.nonzero(labels == label).flatten()
            wanted = len(members) if per_class is None else per_class
            if len(members) < max(wanted, self.labels_validation + 1):
                raise ConfigError(
                    f"dataset.labels_per_class={per_class} (labels_validation={self.labels_validation}) "
                    f"needs "
                    f"{max(wanted, self.labels_validation + 1)} training images of every class, but class "
                    f"{self.class_names[label]!r} of {type(self).__name__} has {len(members)}. Ask for fewer."
                )
            order = np.random.default_rng([self.seed % 2**63, label, LABELS_STREAM]).permutation(len(members))
            picks.append(members[torch.from_numpy(order[:wanted])])
        return picks

    def validation_loader(self) -> DataLoader | list:
        """The labelled images held for validation, in batches of `batch_size`; [] when there are none."""
        images, labels = self.label_split().validation
        if not len(images):
            return []
        return DataLoader(TensorDataset(images, labels), batch_size=max(self.batch_size, 256), shuffle=False)

    def setup(self, stage: str | None = None) -> None:
        images, _ = self.split(train=True)
        if not len(images):
            raise DataError(f"{type(self).__name__} has no training images with the selected classes.")
        if self.semi_supervised:
            self._setup_semi_supervised()
            return
        if len(images) < self.batch_size:
            # Few-shot splits (e.g. per_class=5) are smaller than a default batch: train on all of it.
            log.info(
                "dataset.batch_size=%d is larger than the %d training images: each batch is the whole split.",
                self.batch_size,
                len(images),
            )
            self.batch_size = len(images)

    def _setup_semi_supervised(self) -> None:
        # Lightning's validation hook on this instance only: a plain GAN's datamodule has none, so its runs
        # have no validation loop to skip (and no warning saying so).
        self.val_dataloader = self.validation_loader
        if self._announced:
            return
        self._announced = True
        split = self.label_split()
        labelled, unlabelled = len(split.labelled[0]), len(split.unlabelled)
        if not unlabelled:
            raise DataError(
                f"dataset.labels_per_class={self.labels_per_class} leaves no unlabelled training image in "
                f"{type(self).__name__}: ask for fewer labels per class."
            )
        log.info(
            "Semi-supervised: %d labelled training images (%d per class), %d for validation, %d unlabelled.",
            labelled,
            labelled // max(1, len(self.selected_labels)),
            len(split.validation[0]),
            unlabelled,
        )
        if unlabelled < labelled:
            log.warning(
                "The unlabelled pool (%d images) is smaller than the labelled set (%d).", unlabelled, labelled
            )
        if max(labelled, unlabelled) < self.batch_size:  # the smaller set is cycled within a batch
            self.batch_size = max(labelled, unlabelled)
            log.info(
                "Each batch takes %d labelled and %d unlabelled images.", self.batch_size, self.batch_size
            )

    def resident_device(self) -> torch.device | None:
        """The accelerator the training split is kept on, or None to keep it in host memory."""
        if self.device_resident is False or self.trainer is None:
            return None
        device = self.trainer.strategy.root_device
        return None if device.type == "cpu" else device

    def train_dataloader(self) -> DataLoader:
        images, labels = self.split(train=True)
        if self.semi_supervised:
            # Labelled images first, then the unlabelled ones under the label UNLABELLED: the game tells them
            # apart by label, and an unlabelled image's true label never enters the loader.
            split = self.label_split()
            images = torch.cat([split.labelled[0], split.unlabelled])
            labels = torch.cat([split.labelled[1], torch.full((len(split.unlabelled),), UNLABELLED)])
        device = self.resident_device()
        if device is not None:
            images, labels = images.to(device), labels.to(device)
        if self.semi_supervised:
            labelled = len(self.label_split().labelled[0])
            sampler = SemiSupervisedBatches(
                labelled, len(images) - labelled, self.batch_size, self.seed, device=device
            )
        elif self.pairs:
            sampler = PairedBatches(labels, self.batch_size, self.seed, self.drop_last, device=device)
        else:
            sampler = ShuffledBatches(len(images), self.batch_size, self.seed, self.drop_last, device=device)
        self._train_sampler = sampler
        # batch_size=None: the sampler yields whole index batches, fetched with one tensor index. The
        # loader's own generator keeps it from drawing on the global RNG (the training noise stream).
        return ResumableLoader(
            TensorDataset(images, labels), sampler=sampler, batch_size=None, generator=torch.Generator()
        )

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        # Runs once for each batch the training loop takes (Lightning fetches one batch ahead).
        if self.trainer is not None and self.trainer.training and self._train_sampler is not None:
            self._train_sampler.taken += 1
        images, labels = batch
        return to_signed_unit(images), labels


def _class_list(classes: Sequence[str | int] | str | int | None) -> tuple[str, ...] | None:
    """`dataset.classes` as class names; Hydra gives ints for `[0,1]` and a bare value for `=A`."""
    if classes is None:
        return None
    names = (str(classes),) if isinstance(classes, str | int) else tuple(str(c) for c in classes)
    if not names or len(set(names)) != len(names):
        raise ConfigError(
            f"dataset.classes={list(names)} must name each class once and at least one class, e.g. "
            f"dataset.classes=[0,1], or be null to keep every class."
        )
    return names


def to_signed_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1], the generator's tanh range."""
    return images.float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255], the inverse of `to_signed_unit` (clamped)."""
    return images.add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)
