"""What the expand command reads: the user's labelled folder, converted by the folder dataset (its
preprocessing, its cache, its rule for files that cannot be characters), with the file of each image, what
was skipped, and a digest naming the listing and the preprocessing (what a stored step was made from); the
pool of unlabelled images as the same dataset reads it; and the pool's labels once a step has made them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from handwriting_gan.errors import ConfigError, DataError
from handwriting_gan.expand.settings import Plan
from handwriting_gan.files import atomic_path


@dataclass(frozen=True)
class Folder:
    """The user's folder as the folder dataset converted it."""

    class_names: tuple[str, ...]
    images: torch.Tensor  # uint8 (N, 1, H, W), listing order
    labels: torch.Tensor
    #: Each image's file, relative to the folder; and every file left out, with the reason.
    originals: list[str]
    skipped: list[dict[str, str]]
    digest: str

    @classmethod
    def read(cls, plan: Plan) -> Folder:
        from handwriting_gan.data.conversion import Conversion

        datamodule = plan.datamodule()
        listing = datamodule.listing()
        if len(listing.class_names) < 2:
            raise DataError(
                f"path={plan.path} has one class folder ({listing.class_names[0]!r}); a labelled dataset "
                f"needs at least two classes. Add a sub-folder of images for each other class."
            )
        images, labels = datamodule.converted()
        conversion = Conversion.load(datamodule.cache_path())  # which file each image is, what was skipped
        key = datamodule.preprocessing.key
        return cls(
            listing.class_names,
            images.unsqueeze(1),
            labels,
            [listing.files[index] for index in conversion.kept.tolist()],
            [
                {"file": file, "class": listing.class_names[label], "reason": reason}
                for file, label, reason in conversion.skipped
            ],
            hashlib.sha256(f"{listing.digest}\n{key}".encode()).hexdigest()[:24],
        )

    @property
    def counts(self) -> list[int]:
        return torch.bincount(self.labels, minlength=len(self.class_names)).tolist()


def check_label_bytes(plan: Plan, folder: Folder) -> None:
    if plan.format == "idx" and len(folder.class_names) > 256:
        raise ConfigError(
            f"format=idx stores labels as bytes, for at most 256 classes; path={plan.path} has "
            f"{len(folder.class_names)}. Use format=npz or format=imagefolder."
        )


@dataclass(frozen=True)
class Pool:
    """The pool as the folder dataset read it: usable, unique images (uint8 (N, 1, H, W)) and each one's
    index in `files` (the pool folder's image files, sorted)."""

    images: torch.Tensor
    pool_index: torch.Tensor
    files: tuple[str, ...]


@dataclass(frozen=True)
class PoolLabels:
    """Every pool image's predicted label and its confidence, in Pool order."""

    labels: torch.Tensor
    confidence: torch.Tensor


def read_pool(datamodule) -> Pool:
    split = datamodule.label_split()
    return Pool(split.unlabelled, split.source_index, datamodule.pool_files())


def load_labels(stored: Path) -> PoolLabels:
    """The pool's labels as `save_labels` stored them in the work folder."""
    try:
        data = torch.load(stored, weights_only=True)
        return PoolLabels(data["labels"], data["confidence"])
    except Exception as error:
        raise DataError(f"{stored} cannot be read ({error}); delete it to label the pool again.") from None


def save_labels(stored: Path, labels: PoolLabels) -> PoolLabels:
    with atomic_path(stored) as tmp:
        torch.save({"labels": labels.labels, "confidence": labels.confidence}, tmp)
    return labels
