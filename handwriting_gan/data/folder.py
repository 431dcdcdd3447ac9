"""`dataset=folder`: any folder of character images, one sub-folder per class (torchvision's ImageFolder
layout), converted once to MNIST's format and cached under `<cache_dir>/folder/`.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from handwriting_gan.data.base import ImageDataModule
from handwriting_gan.data.conversion import Conversion, convert_characters, grey_square
from handwriting_gan.data.preprocess import Preprocessing, image_suffixes
from handwriting_gan.errors import ConfigError, DataError
from handwriting_gan.files import file_digest

log = logging.getLogger(__name__)

# Mixed into the held-out draw's seed, so it is independent of the `per_class` draw that
# ImageDataModule seeds with (seed, label) alone.
HELD_OUT_STREAM = 1
# How many classes a warning names before it only counts the rest.
NAMED = 5


@dataclass(frozen=True)
class Listing:
    """What the folder holds: class names (sorted sub-folder names) and every image file with its label.

    `digest` hashes each file's relative name, size and modification time, so any added, removed,
    renamed or rewritten image changes it.
    """

    class_names: tuple[str, ...]
    files: tuple[str, ...]  # relative to the folder, with "/" separators
    labels: tuple[int, ...]
    digest: str


class FolderDataModule(ImageDataModule):
    """The images under `path/<class>/` (any depth below the class folder) as uint8 tensors in MNIST's
    format; the class names are the sub-folder names, sorted, and a class's label is its position.

    Each image is converted by handwriting_gan.data.preprocess (`ink`, `ink_threshold`, `fit_size`,
    `image_size`), once: the result is cached in `<cache_dir>/folder/` under a hash of the folder's
    listing and those settings, with a report beside it. An image that cannot be a character
    (unreadable, blank, too small) is left out with one console line, unless `strict`
    (conversion.Conversion.accept). The folder itself is only read. Of each class, `test_per_class` images,
    or when that is None a `test_fraction` of them, are held out as the test split, drawn by `seed`;
    at least one image of every class stays for training. Single-class folders load (an unconditional
    GAN needs no labels); `num_classes` tells a conditional model it has too few.

    The constructor only checks settings; the folder is first read by `class_names` or `split`.
    """

    def __init__(
        self,
        path: str | None,
        cache_dir: str,
        ink: str = "auto",
        ink_threshold: int | None = None,
        fit_size: int = 20,
        image_size: int = 28,
        test_fraction: float | None = 0.1,
        test_per_class: int | None = None,
        strict: bool = False,
        unlabeled: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**grey_square(image_size, kwargs, "folder images become"))
        if path is None or not str(path).strip():
            raise ConfigError(
                "dataset.path=<dir> is required: the folder of images with one sub-folder per class, "
                "e.g. dataset=folder dataset.path=~/letters (holding ~/letters/a/*.png, ~/letters/b/*.png)."
            )
        self.preprocessing = Preprocessing((image_size, image_size), fit_size, ink, ink_threshold)
        if test_per_class is not None and (isinstance(test_per_class, bool) or int(test_per_class) < 0):
            raise ConfigError(
                f"dataset.test_per_class={test_per_class} must be 0 or more images per class, or null to "
                f"hold out dataset.test_fraction of each class instead."
            )
        if test_per_class is None and (test_fraction is None or not 0 <= float(test_fraction) < 1):
            raise ConfigError(
                f"dataset.test_fraction={test_fraction} must be at least 0 and below 1 (e.g. 0.1 holds out "
                f"a tenth of each class), or set dataset.test_per_class instead."
            )
        if not isinstance(strict, bool):
            raise ConfigError(
                f"dataset.strict={strict} must be true (refuse the folder if any image cannot be a "
                f"character) or false (leave such images out)."
            )
        self.path = Path(str(path)).expanduser()
        self.cache_dir = Path(cache_dir).expanduser()
        self.image_size = image_size
        self.test_per_class = None if test_per_class is None else int(test_per_class)
        self.test_fraction = None if test_per_class is not None else float(test_fraction)
        self.strict = strict
        self.unlabeled = None if unlabeled is None else Path(str(unlabeled)).expanduser()
        self._listing: Listing | None = None
        self._pool_files: tuple[str, ...] | None = None
        self._all: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.listing().class_names

    def cache_path(self) -> Path:
        """Where the converted folder is kept; another listing or setting gives another name."""
        listing = self.listing()
        digest = hashlib.sha256(f"{listing.digest}\n{self.preprocessing.key}".encode()).hexdigest()
        readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.path.resolve().name) or "folder"
        return self.cache_dir / "folder" / f"{readable}-{digest[:24]}.pt"

    # -- reading the folder ---------------------------------------------------------------------
    def listing(self) -> Listing:
        """The folder's class folders and image files, read once; DataError for a folder that cannot be
        a dataset."""
        if self._listing is None:
            self._listing = self._scan()
        return self._listing

    def _scan(self) -> Listing:
        root = self.path
        if not root.exists():
            raise DataError(
                f"dataset.path={root} does not exist (looked for {root.resolve()}). Point it at a folder "
                f"with one sub-folder of images per class."
            )
        if not root.is_dir():
            raise DataError(
                f"dataset.path={root} is a file, not a folder. Point it at a folder with one sub-folder of "
                f"images per class (unpack an archive first)."
            )
        suffixes = image_suffixes()
        # Hidden entries (.git, .ipynb_checkpoints, macOS ._ files) are never classes or images.
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not folders:
            loose = sum(1 for p in root.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
            found = f"only {loose} images directly inside it" if loose else "nothing usable"
            raise DataError(
                f"dataset.path={root} has no class sub-folders ({found}). Put the images of each class in "
                f"a sub-folder named after the class, e.g. {root / 'a'}/*.png; a single sub-folder is "
                f"enough for an unconditional GAN."
            )
        digest = hashlib.sha256()
        files, labels = [], []
        for label, folder in enumerate(folders):
            members = sorted(
                p.relative_to(root).as_posix()
                for p in folder.rglob("*")
                if p.suffix.lower() in suffixes
                and not any(part.startswith(".") for part in p.relative_to(folder).parts)
                and p.is_file()
            )
            if not members:
                raise DataError(
                    f"Class folder {folder} holds no image file (.png, .jpg, .bmp, .tif, ... any format "
                    f"Pillow reads). Add images of class {folder.name!r} or remove the folder."
                )
            for name in members:
                stat = (root / name).stat()
                digest.update(f"{name}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
            files += members
            labels += [label] * len(members)
        return Listing(tuple(p.name for p in folders), tuple(files), tuple(labels), digest.hexdigest())

    # -- converting, cached ---------------------------------------------------------------------
    def converted(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every usable image as (uint8 images (N, H, W), int64 labels), in listing order."""
        if self._all is None:
            path, listing = self.cache_path(), self.listing()
            classes = [f"Class folder {self.path / name}" for name in listing.class_names]
            conversion = Conversion.cached(
                path,
                lambda: self._convert(path),
                classes,
                str(self.path),
                self.strict,
                self.preprocessing,
                listing.class_names,
            )
            self._all = (conversion.images, conversion.labels)
        return self._all

    def _convert(self, path: Path) -> Conversion:
        listing = self.listing()
        log.info("Converting the %d images of %s once into %s", len(listing.files), self.path, path)
        files = [
            (str(self.path / name), label, self.path / name)
            for name, label in zip(listing.files, listing.labels, strict=True)
        ]
        return convert_characters(files, self.preprocessing, str(self.path))

    # -- the held-out split ---------------------------------------------------------------------
    def _load(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = self.converted()
        test = self._held_out(labels)
        keep = ~test if train else test
        return images[keep], labels[keep]

    def _held_out(self, labels: torch.Tensor) -> torch.Tensor:
        """True for the images of each class drawn, by (seed, label), for the test split."""
        test = torch.zeros(len(labels), dtype=torch.bool)
        capped = []
        for label in range(self.num_classes):
            members = torch.nonzero(labels == label).flatten()
            if self.test_per_class is not None:
                wanted = self.test_per_class
            else:
                wanted = round(self.test_fraction * len(members))
            count = min(wanted, len(members) - 1)
            if count < wanted:
                capped.append(f"{self.class_names[label]!r} ({len(members)})")
            rng = np.random.default_rng([self.seed % 2**63, label, HELD_OUT_STREAM])
            order = torch.from_numpy(rng.permutation(len(members)))
            test[members[order[:count]]] = True
        if capped:
            log.warning(
                "The held-out split would take every image of %d classes of %s (e.g. %s); one image of "
                "each stays for training.",
                len(capped),
                self.path,
                ", ".join(capped[:NAMED]),
            )
        return test

    # -- the unlabelled pool (dataset.unlabeled) -------------------------------------------------
    def _has_pool(self) -> bool:
        return self.unlabeled is not None

    def pool_files(self) -> tuple[str, ...]:
        """Every image file under `unlabeled`, at any depth, relative to it and sorted: a pool image's
        `pool_index` is its position here. DataError for a pool that cannot be read."""
        if self._pool_files is None:
            root = self.unlabeled
            if not root.exists():
                raise DataError(f"dataset.unlabeled={root} does not exist (looked for {root.resolve()}).")
            if not root.is_dir():
                raise DataError(f"dataset.unlabeled={root} is a file, not a folder of images.")
            suffixes = image_suffixes()
            self._pool_files = tuple(
                sorted(
                    p.relative_to(root).as_posix()
                    for p in root.rglob("*")
                    if p.suffix.lower() in suffixes
                    and not any(part.startswith(".") for part in p.relative_to(root).parts)
                    and p.is_file()
                )
            )
            if not self._pool_files:
                raise DataError(
                    f"dataset.unlabeled={root} holds no image file (.png, .jpg, ... any format Pillow reads, "
                    f"in any layout)."
                )
        return self._pool_files

    def _unlabelled_pool(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The pool's usable images, converted as the labelled folder's and cached, without those
        byte-identical to a labelled image (training or test: the pool never holds a test image)."""
        if self.unlabeled is None:
            return None
        root, files = self.unlabeled, self.pool_files()
        digest, sizes = hashlib.sha256(), {}
        for name in files:
            stat = (root / name).stat()
            sizes[name] = stat.st_size
            digest.update(f"{name}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
        key = hashlib.sha256(f"{digest.hexdigest()}\n{self.preprocessing.key}".encode()).hexdigest()
        readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", root.resolve().name) or "pool"
        path = self.cache_dir / "folder" / f"{readable}-pool-{key[:24]}.pt"

        def convert() -> Conversion:
            log.info("Converting the %d unlabelled images of %s once into %s", len(files), root, path)
            return convert_characters(
                [(str(root / n), 0, root / n) for n in files], self.preprocessing, str(root)
            )

        conversion = Conversion.cached(
            path, convert, [f"Pool folder {root}"], str(root), self.strict, self.preprocessing, ("pool",)
        )
        # Byte-identical files have equal sizes, so only files whose size the other side shares are read
        # and hashed on every build (on MNIST's pool of 59,900 with 100 labelled images, 46% of it).
        kept = [files[int(i)] for i in conversion.kept]
        labelled_sizes = {self.path / n: (self.path / n).stat().st_size for n in self.listing().files}
        pool_sizes = {sizes[name] for name in kept}
        labelled = {file_digest(path, 64) for path, size in labelled_sizes.items() if size in pool_sizes}
        shared = set(labelled_sizes.values())
        unique = torch.tensor(
            [sizes[name] not in shared or file_digest(root / name, 64) not in labelled for name in kept]
        )
        if not bool(unique.all()):
            log.warning(
                "Dropped %d pool images byte-identical to labelled images of %s.",
                int((~unique).sum()),
                self.path,
            )
        if not bool(unique.any()):
            raise DataError(f"dataset.unlabeled={root}: every usable image is a copy of a labelled one.")
        return conversion.images[unique].unsqueeze(1), conversion.kept[unique]
