"""Chars74K's hand-drawn English characters (EnglishHnd): fetched, checked, and converted once into
MNIST's format (handwriting_gan.data.preprocess), cached under `paths.cache_dir`.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import string
import tarfile
from pathlib import Path

import numpy as np
import torch
from torchvision.datasets.utils import download_url

from handwriting_gan.data.base import ImageDataModule
from handwriting_gan.data.preprocess import Preprocessing
from handwriting_gan.errors import ConfigError, DataError
from handwriting_gan.files import atomic_path

log = logging.getLogger(__name__)

#: Sample001-Sample062 in the archive: digits, then uppercase, then lowercase letters.
CLASS_NAMES = tuple(string.digits + string.ascii_uppercase + string.ascii_lowercase)
# English/Hnd/Img/SampleCCC/imgCCC-NNN.png: CCC is the class (001-062), NNN the sample (001-055).
SCAN = re.compile(r"(?:^|/)English/Hnd/Img/Sample(\d{3})/img\d{3}-(\d{3})\.png$")


class Chars74KDataModule(ImageDataModule):
    """The 3,410 EnglishHnd characters (62 classes, 55 each) as uint8 tensors in MNIST's format.

    The archive `<root>/Chars74K/EnglishHnd.tgz` is read in place (never unpacked, so `root` may be
    read-only); the preprocessed tensors are written once to `<cache_dir>/chars74k/`, under a name
    made of the archive's md5 and every preprocessing setting. The test split is the last
    `test_per_class` samples of each class by file number; the others are the training split.
    """

    url = "http://www.ee.surrey.ac.uk/CVSSP/demos/chars74k/EnglishHnd.tgz"
    # md5 of the official archive, as pinned by google-deepmind/dm_nevis
    # (dm_nevis/datasets_storage/handlers/chars74k.py), which verifies it with hashlib.md5.
    md5 = "95e9ee6d929809ef4c2f509f86388c72"
    class_names = CLASS_NAMES

    def __init__(
        self,
        root: str,
        cache_dir: str,
        download: bool = True,
        test_per_class: int = 10,
        fit_size: int = 20,
        ink_threshold: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        channels, height, width = self.image_shape
        if channels != 1:
            raise ConfigError(
                f"dataset.image_shape={list(self.image_shape)}: Chars74K is preprocessed to one grey "
                f"channel; use [1, {height}, {width}]."
            )
        # The scans are dark strokes on white paper: nothing to detect.
        self.preprocessing = Preprocessing((height, width), fit_size, "dark", ink_threshold)
        if int(test_per_class) < 0:
            raise ConfigError(f"dataset.test_per_class={test_per_class} must be 0 or more images per class.")
        self.root = Path(root).expanduser()
        self.cache_dir = Path(cache_dir).expanduser()
        self.download = download
        self.test_per_class = int(test_per_class)
        self._all: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    @property
    def archive(self) -> Path:
        return self.root / "Chars74K" / "EnglishHnd.tgz"

    def cache_path(self) -> Path:
        """Where the preprocessed dataset is kept; any change of archive or setting gives a new name."""
        return self.cache_dir / "chars74k" / f"EnglishHnd-{self.md5}-{self.preprocessing.key}.pt"

    def _load(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels, samples = self.preprocessed()
        test = self._held_out(labels, samples)
        keep = ~test if train else test
        return images[keep], labels[keep]

    def _held_out(self, labels: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
        """True for the `test_per_class` highest-numbered samples of every class."""
        test = torch.zeros(len(labels), dtype=torch.bool)
        for label in labels.unique().tolist():
            members = torch.nonzero(labels == label).flatten()
            if len(members) <= self.test_per_class:
                raise ConfigError(
                    f"dataset.test_per_class={self.test_per_class} leaves no training image of class "
                    f"{self.class_names[label]!r}, which has {len(members)}; use at most {len(members) - 1}."
                )
            by_number = members[torch.argsort(samples[members])]
            test[by_number[len(by_number) - self.test_per_class :]] = True
        return test

    def preprocessed(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every character as (uint8 images (N, H, W), int64 labels, int64 sample numbers)."""
        if self._all is None:
            path = self.cache_path()
            if not path.is_file():
                self._build_cache(path)
            try:
                data = torch.load(path, weights_only=True)
                self._all = (data["images"], data["labels"], data["samples"])
            except Exception as exc:
                raise DataError(
                    f"The Chars74K cache {path} cannot be read ({exc}); delete it to rebuild it."
                ) from None
        return self._all

    def _build_cache(self, path: Path) -> None:
        archive = self._verified_archive()
        log.info("Preprocessing %s once into %s", archive, path)
        images, labels, samples = [], [], []
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                match = SCAN.search(member.name)
                if not member.isfile() or match is None:
                    continue
                scan = io.BytesIO(tar.extractfile(member).read())
                image = self.preprocessing.convert(scan, f"{archive}: {member.name}")
                label = int(match.group(1)) - 1
                if not 0 <= label < len(CLASS_NAMES):
                    raise DataError(
                        f"{archive}: {member.name} lies outside Sample001-Sample062, so the archive is not "
                        f"EnglishHnd. Place the official {self.url} there."
                    )
                images.append(image)
                labels.append(label)
                samples.append(int(match.group(2)))
        if not images:
            raise DataError(
                f"{archive} holds no English/Hnd/Img/SampleNNN/imgNNN-NNN.png, so it is not EnglishHnd. "
                f"Place the official {self.url} there."
            )
        order = np.lexsort((samples, labels))  # the archive's member order is not guaranteed
        data = {
            "images": torch.from_numpy(np.stack(images)[order]),
            "labels": torch.tensor(labels, dtype=torch.int64)[order],
            "samples": torch.tensor(samples, dtype=torch.int64)[order],
        }
        with atomic_path(path) as tmp:
            torch.save(data, tmp)

    def _verified_archive(self) -> Path:
        archive = self.archive
        if not archive.is_file():
            if not self.download:
                raise DataError(self._missing_message("dataset.download=false."))
            try:
                with atomic_path(archive) as partial:
                    partial.unlink()  # download_url skips a file that already exists
                    download_url(self.url, str(partial.parent), partial.name)
            except Exception as exc:  # any network or disk failure ends in the same advice
                raise DataError(self._missing_message(f"Download failed ({exc}).")) from None
        digest = md5_of(archive)
        if digest != self.md5:
            raise DataError(
                f"Checksum mismatch: {archive} has md5 {digest}, but the official EnglishHnd.tgz has "
                f"md5 {self.md5}. The file is truncated, corrupt or another archive. Delete it and run "
                f"again to download it anew, or place the official {self.url} there by hand."
            )
        return archive

    def _missing_message(self, why: str) -> str:
        folder = self.archive.parent.resolve()
        return (
            f"Chars74K's {self.archive.name} is missing from {folder} and could not be fetched: {why}\n"
            f"Download {self.url} (md5 {self.md5}) and place it, still packed, as "
            f"{folder / self.archive.name}, or point paths.data_dir (HWGAN_DATA_DIR) at a folder that "
            f"holds Chars74K/{self.archive.name}. It is read once; the preprocessed images go to "
            f"{self.cache_dir.resolve() / 'chars74k'}."
        )


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
