"""Chars74K's hand-drawn English characters (EnglishHnd), read from the official archive or from the tree
it unpacks to, checked, and converted once into MNIST's format (handwriting_gan.data.preprocess), cached
under `paths.cache_dir`.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import string
import tarfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch
from torchvision.datasets.utils import download_url

from handwriting_gan.data.base import ImageDataModule
from handwriting_gan.data.conversion import Conversion, convert_characters, files_digest
from handwriting_gan.data.preprocess import Preprocessing, image_suffixes
from handwriting_gan.errors import ConfigError, DataError
from handwriting_gan.files import atomic_path

log = logging.getLogger(__name__)

#: Sample001-Sample062: digits, then uppercase, then lowercase letters.
CLASS_NAMES = tuple(string.digits + string.ascii_uppercase + string.ascii_lowercase)
# English/Hnd/Img/SampleCCC/imgCCC-NNN.png: CCC is the class (001-062), NNN the sample (001-055).
IMG = "English/Hnd/Img"
SCAN = re.compile(r"(?:^|/)English/Hnd/Img/(Sample(\d{3})/img\d{3}-(\d{3})\.png)$")
# How many missing or extra files an error names before it only counts the rest.
NAMED = 5


@dataclass(frozen=True)
class Scans:
    """The PNG scans as read, in (class, sample) order: each one's name relative to Img/ (as
    SampleCCC/imgCCC-NNN.png, whatever the source), label, sample number and bytes.

    `digest` hashes every name and its bytes, so the same scans give the same cache whether they came from
    the archive or from the unpacked tree, and any changed, added or removed scan gives another.
    """

    source: Path
    names: tuple[str, ...]
    labels: tuple[int, ...]
    samples: tuple[int, ...]
    contents: tuple[bytes, ...]

    @cached_property
    def digest(self) -> str:
        return files_digest(self.names, self.contents)

    def display(self, name: str) -> str:
        """Where a scan is, for a person: the file in the tree, or the archive and its member."""
        if self.source.is_dir():
            return str(self.source / name)
        return f"{self.source}: {IMG}/{name}"


class Chars74KDataModule(ImageDataModule):
    """The 3,410 EnglishHnd characters (62 classes, 55 each) as uint8 tensors in MNIST's format.

    Read, never written, from `<root>/Chars74K/`: the archive `EnglishHnd.tgz` itself (checked by md5,
    never unpacked) or, when it is absent, the tree it unpacks to, `English/Hnd/Img/SampleCCC/
    imgCCC-NNN.png` (checked file by file: 62 class folders of 55 scans each). With neither and
    `download`, the archive is fetched there. The preprocessed tensors are written once to
    `<cache_dir>/chars74k/`, under a name made of a hash of the scans' names and contents and every
    preprocessing setting, with a report beside it. A scan that cannot be a character is left out
    unless `strict` (conversion.Conversion.accept). The test split is the last `test_per_class` samples
    of each class by file number; the others are the training split.
    """

    url = "http://www.ee.surrey.ac.uk/CVSSP/demos/chars74k/EnglishHnd.tgz"
    # md5 of the official archive, as pinned by google-deepmind/dm_nevis
    # (dm_nevis/datasets_storage/handlers/chars74k.py), which verifies it with hashlib.md5.
    md5 = "95e9ee6d929809ef4c2f509f86388c72"
    #: Scans per class in the official set; the unpacked tree is checked against it.
    samples_per_class = 55
    class_names = CLASS_NAMES

    def __init__(
        self,
        root: str,
        cache_dir: str,
        download: bool = True,
        test_per_class: int = 10,
        fit_size: int = 20,
        ink_threshold: int | None = None,
        strict: bool = False,
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
        if not isinstance(strict, bool):
            raise ConfigError(
                f"dataset.strict={strict} must be true (refuse the dataset if any scan cannot be a "
                f"character) or false (leave such scans out)."
            )
        self.root = Path(root).expanduser()
        self.cache_dir = Path(cache_dir).expanduser()
        self.download = download
        self.test_per_class = int(test_per_class)
        self.strict = strict
        self._all: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._cache_path: Path | None = None

    @property
    def folder(self) -> Path:
        return self.root / "Chars74K"

    @property
    def archive(self) -> Path:
        return self.folder / "EnglishHnd.tgz"

    @property
    def tree(self) -> Path:
        """The Img/ folder of the unpacked archive."""
        return self.folder / IMG

    def cache_path(self, scans: Scans | None = None) -> Path:
        """Where the preprocessed dataset is kept; other scans or another setting give another name.
        Found once per instance (it reads every scan, or `scans` when given)."""
        if self._cache_path is None:
            digest = (scans or self.scans()).digest
            self._cache_path = (
                self.cache_dir / "chars74k" / f"EnglishHnd-{digest[:16]}-{self.preprocessing.key}.pt"
            )
        return self._cache_path

    # -- the splits ----------------------------------------------------------------------------
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

    # -- converting, cached --------------------------------------------------------------------
    def preprocessed(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every usable character as (uint8 images (N, H, W), int64 labels, int64 sample numbers)."""
        if self._all is None:
            scans = self.scans()
            path = self.cache_path(scans)
            classes = [f"Class {name!r} (Sample{label + 1:03d})" for label, name in enumerate(CLASS_NAMES)]
            conversion = Conversion.cached(
                path,
                lambda: self._convert(path, scans),
                classes,
                str(scans.source),
                self.strict,
                self.preprocessing,
                CLASS_NAMES,
            )
            samples = torch.tensor(scans.samples, dtype=torch.int64)[conversion.kept]
            self._all = (conversion.images, conversion.labels, samples)
        return self._all

    def _convert(self, path: Path, scans: Scans) -> Conversion:
        log.info(
            "Preprocessing the %d scans of %s once into %s (later loads read it)",
            len(scans.names),
            scans.source,
            path,
        )
        files = [
            (scans.display(name), label, io.BytesIO(content))
            for name, label, content in zip(scans.names, scans.labels, scans.contents, strict=True)
        ]
        return convert_characters(files, self.preprocessing, "Chars74K")

    # -- reading the scans ---------------------------------------------------------------------
    def scans(self) -> Scans:
        """Every scan, from the archive when it is there, else from the unpacked tree, else downloaded."""
        if self.archive.is_file():
            return self._archive_scans()
        if self.tree.is_dir():
            return self._tree_scans()
        if not self.download:
            raise DataError(self._missing_message("dataset.download=false."))
        try:
            with atomic_path(self.archive) as partial:
                partial.unlink()  # download_url skips a file that already exists
                download_url(self.url, str(partial.parent), partial.name)
        except Exception as exc:  # any network or disk failure ends in the same advice
            raise DataError(self._missing_message(f"Download failed ({exc}).")) from None
        return self._archive_scans()

    def _archive_scans(self) -> Scans:
        archive = self.archive
        digest = md5_of(archive)
        if digest != self.md5:
            raise DataError(
                f"Checksum mismatch: {archive} has md5 {digest}, but the official EnglishHnd.tgz has "
                f"md5 {self.md5}. The file is truncated, corrupt or another archive. Delete it and run "
                f"again to download it anew, or place the official {self.url} there by hand (or its "
                f"unpacked tree as {self.tree})."
            )
        found = []
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                match = SCAN.search(member.name)
                if not member.isfile() or match is None:
                    continue
                label = int(match.group(2)) - 1
                if not 0 <= label < len(CLASS_NAMES):
                    raise DataError(
                        f"{archive}: {member.name} lies outside Sample001-Sample062, so the archive is not "
                        f"EnglishHnd. Place the official {self.url} there."
                    )
                content = tar.extractfile(member).read()
                found.append((label, int(match.group(3)), match.group(1), content))
        if not found:
            raise DataError(
                f"{archive} holds no {IMG}/SampleCCC/imgCCC-NNN.png, so it is not EnglishHnd. Place the "
                f"official {self.url} there."
            )
        return _scans(archive, found)

    def _tree_scans(self) -> Scans:
        """The unpacked tree's scans, after checking it holds exactly the official files."""
        tree = self.tree
        expected = {
            f"Sample{label + 1:03d}/img{label + 1:03d}-{sample:03d}.png": (label, sample)
            for label in range(len(CLASS_NAMES))
            for sample in range(1, self.samples_per_class + 1)
        }
        suffixes = image_suffixes()
        classes = {name.split("/")[0] for name in expected}
        present, extra = set(), []
        # Hidden entries (.DS_Store, ._ files) and files that are no image (Img/all.txt, Thumbs.db) are
        # not scans; any other folder or image is extra.
        for folder in sorted(p for p in tree.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if folder.name not in classes:
                extra.append(f"{folder.name}/")
                continue
            for path in sorted(folder.rglob("*")):
                relative = path.relative_to(tree)
                if (
                    any(part.startswith(".") for part in relative.parts)
                    or path.suffix.lower() not in suffixes
                ):
                    continue
                if path.is_file():
                    name = relative.as_posix()
                    if name in expected:
                        present.add(name)
                    else:
                        extra.append(name)
        missing = [name for name in expected if name not in present]
        if missing or extra:
            raise DataError(self._tree_message(missing, extra))
        found = [(*expected[name], name, (tree / name).read_bytes()) for name in expected]
        return _scans(tree, found)

    def _tree_message(self, missing: list[str], extra: list[str]) -> str:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing ({_first(missing)})")
        if extra:
            problems.append(f"{len(extra)} extra ({_first(extra)})")
        return (
            f"{self.tree} is not EnglishHnd as unpacked from EnglishHnd.tgz: {' and '.join(problems)}. It "
            f"should hold Sample001-Sample062 with img<CCC>-001.png to img<CCC>-{self.samples_per_class:03d}"
            f".png in each, {len(CLASS_NAMES) * self.samples_per_class} scans in all. Unpack the official "
            f"archive again into {self.folder} (tar xzf EnglishHnd.tgz), or place the archive itself as "
            f"{self.archive}."
        )

    def _missing_message(self, why: str) -> str:
        folder = self.folder.resolve()
        misplaced = self.root / IMG
        hint = f" ({misplaced} exists: move its English/ folder into {folder}.)" if misplaced.is_dir() else ""
        return (
            f"Chars74K is missing from {folder} (neither {self.archive.name} nor its unpacked {IMG}/) and "
            f"could not be fetched: {why}{hint}\n"
            f"Download {self.url} (md5 {self.md5}) and place it as {folder / self.archive.name}, packed or "
            f"unpacked there (tar xzf EnglishHnd.tgz gives {folder / IMG}/Sample001...), or point "
            f"paths.data_dir (HWGAN_DATA_DIR) at a folder that holds Chars74K/. It is only read; the "
            f"preprocessed images go to {self.cache_dir.resolve() / 'chars74k'}."
        )


def _scans(source: Path, found: list[tuple[int, int, str, bytes]]) -> Scans:
    found.sort(key=lambda scan: scan[:2])  # the archive's member order is not guaranteed
    labels, samples, names, contents = zip(*found, strict=True)
    return Scans(source, names, labels, samples, contents)


def _first(names: list[str]) -> str:
    more = f", and {len(names) - NAMED} more" if len(names) > NAMED else ""
    return ", ".join(names[:NAMED]) + more


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
