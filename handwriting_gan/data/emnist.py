"""EMNIST, any of its six splits, read from torchvision's folder layout, turned upright, and its class
table checked against the split's official mapping file when that is there."""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np
import torch
from torchvision.datasets import EMNIST

from handwriting_gan.data.base import ImageDataModule
from handwriting_gan.data.mnist import read_idx
from handwriting_gan.errors import ConfigError, DataError

DIGITS = tuple(string.digits)
UPPER = tuple(string.ascii_uppercase)
# Lowercase letters that keep their own class where bymerge/balanced merge look-alike cases.
DISTINCT_LOWER = tuple("abdefghnqrt")

#: Class names per split, label order, as in the splits' emnist-<split>-mapping.txt (label -> ASCII).
SPLIT_CLASSES: dict[str, tuple[str, ...]] = {
    "byclass": DIGITS + UPPER + tuple(string.ascii_lowercase),
    "bymerge": DIGITS + UPPER + DISTINCT_LOWER,
    "balanced": DIGITS + UPPER + DISTINCT_LOWER,
    # One class per letter, both cases together (its mapping lists two codes per label).
    "letters": tuple(u + u.lower() for u in UPPER),
    "digits": DIGITS,
    "mnist": DIGITS,
}
# The letters files number their classes 1-26 (0 is unused); they become 0-25 here.
LABEL_OFFSET = {"letters": 1}


class EMNISTDataModule(ImageDataModule):
    """torchvision's EMNIST under `<root>/EMNIST/raw`, downloaded when absent and `download` is true.

    The files store every image transposed; `_load` transposes it back so characters are upright and
    read left to right. Each file may be plain (as torchvision unpacks it) or `.gz` (as published). When
    the split's `emnist-<split>-mapping.txt` lies beside them (the official archive has one per split;
    torchvision's download does not keep it), its label -> character table must be `class_names`.
    """

    def __init__(self, root: str, split: str = "balanced", download: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        if split not in SPLIT_CLASSES:
            raise ConfigError(
                f"dataset.split={split!r} is not an EMNIST split; use one of {', '.join(SPLIT_CLASSES)}."
            )
        self.root = Path(root).expanduser()
        self.split_name = split
        self.download = download
        self.class_names = SPLIT_CLASSES[split]

    @property
    def raw_folder(self) -> Path:
        return self.root / "EMNIST" / "raw"

    def file_names(self, train: bool) -> tuple[str, str]:
        """The images and labels files of one part of the split, as named inside the official archive."""
        prefix = f"emnist-{self.split_name}-{'train' if train else 'test'}"
        return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"

    @property
    def mapping_file(self) -> Path:
        return self.raw_folder / f"emnist-{self.split_name}-mapping.txt"

    def check_mapping(self) -> None:
        """DataError when the split's mapping file is there and names other characters than `class_names`
        (each line: a label, then the ASCII code of every character it stands for)."""
        path = self.mapping_file
        if not path.is_file():
            return
        offset = LABEL_OFFSET.get(self.split_name, 0)
        table = {}
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            try:
                label, *codes = (int(field) for field in fields)
                if not codes:
                    raise ValueError("no character code")
                table[label] = "".join(chr(code) for code in codes)
            except ValueError as exc:
                raise DataError(
                    f"{path} line {number} ({line.strip()!r}) is not 'label code [code]' ({exc}). Replace "
                    f"the file with the one from the official archive, or remove it."
                ) from None
        expected = {label + offset: name for label, name in enumerate(self.class_names)}
        if table == expected:
            return
        wrong = [label for label in sorted(expected) if table.get(label) != expected[label]]
        extra = sorted(set(table) - set(expected))
        if wrong:
            label = wrong[0]
            found = repr(table[label]) if label in table else "nothing"
            problem = (
                f"maps label {label} to {found}, but label {label} of EMNIST {self.split_name} is "
                f"{expected[label]!r} ({len(wrong)} of {len(expected)} labels differ)"
            )
        else:
            problem = f"lists labels {extra} that EMNIST {self.split_name} does not have"
        raise DataError(
            f"{path} {problem}: the file belongs to another split or is not the official one, so labels "
            f"and characters might not match. Replace it with emnist-{self.split_name}-mapping.txt from "
            f"the official archive {EMNIST.url}, or remove it."
        )

    def _find(self, name: str) -> Path | None:
        for candidate in (self.raw_folder / name, self.raw_folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
        return None

    def _load(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        paths = [self._find(name) for name in self.file_names(train)]
        if None in paths:
            if not self.download:
                raise DataError(self._missing_message("dataset.download=false."))
            try:
                EMNIST(str(self.root), split=self.split_name, train=train, download=True)
            except Exception as exc:  # any network or disk failure ends in the same advice
                raise DataError(self._missing_message(f"Download failed ({exc}).")) from None
            paths = [self._find(name) for name in self.file_names(train)]
        self.check_mapping()
        images_path, labels_path = paths
        images = torch.from_numpy(read_idx(images_path)).transpose(1, 2)
        labels = torch.from_numpy(read_idx(labels_path).astype(np.int64)) - LABEL_OFFSET.get(
            self.split_name, 0
        )
        if len(labels) and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise DataError(
                f"{labels_path} holds labels {labels.min().item()}..{labels.max().item()} (after the split's "
                f"offset), but EMNIST {self.split_name} has {self.num_classes} classes; the file belongs "
                f"to another split or is corrupt. Replace it with the one from the official archive."
            )
        return images, labels

    def _missing_message(self, why: str) -> str:
        names = "\n  ".join(name for train in (True, False) for name in self.file_names(train))
        return (
            f"EMNIST {self.split_name} files are missing from {self.raw_folder.resolve()} and could not be "
            f"fetched: {why}\n"
            f"Expected these files there (plain, or gzip-compressed with a .gz suffix):\n  {names}\n"
            f"They are in the gzip/ folder of the official archive {EMNIST.url} (md5 {EMNIST.md5}). "
            f"Copy them into that folder by hand, or put gzip.zip itself there and keep "
            f"dataset.download=true (it is checked and unpacked without the network), or point "
            f"paths.data_dir (HWGAN_DATA_DIR) at a folder that holds EMNIST/raw/."
        )
