"""MNIST: the full dataset through torchvision, and the small real subset shipped with the package."""

from __future__ import annotations

import gzip
import os
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torchvision.datasets import MNIST
from torchvision.datasets.mnist import read_sn3_pascalvincent_tensor

from handwriting_gan.data.base import ImageDataModule
from handwriting_gan.errors import DataError

DIGITS = tuple(str(d) for d in range(10))


class MNISTDataModule(ImageDataModule):
    """torchvision's MNIST under `<root>/MNIST/raw`, downloaded when absent and `download` is true."""

    class_names = DIGITS

    def __init__(self, root: str, download: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.root = Path(root).expanduser()
        self.download = download

    def expected_files(self) -> list[Path]:
        raw = self.root / "MNIST" / "raw"
        return [raw / os.path.splitext(os.path.basename(url))[0] for url, _ in MNIST.resources]

    def _load(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        missing = [p for p in self.expected_files() if not p.is_file()]
        if missing and self.download:
            try:
                MNIST(str(self.root), train=train, download=True)
            except Exception as exc:  # any network or disk failure ends in the same advice
                raise DataError(self._missing_message(f"Download failed ({exc}).")) from None
        elif missing:
            raise DataError(self._missing_message("dataset.download=false."))
        try:
            dataset = MNIST(str(self.root), train=train, download=False)
        except Exception as exc:  # torchvision reports a short or malformed file in several ways
            raise DataError(
                f"MNIST files in {self.root / 'MNIST' / 'raw'} cannot be read ({type(exc).__name__}: {exc}); "
                f"they are truncated or corrupt. Replace them with the official files."
            ) from None
        return dataset.data, dataset.targets

    def _missing_message(self, why: str) -> str:
        folder = self.root / "MNIST" / "raw"
        names = "\n  ".join(p.name for p in self.expected_files())
        return (
            f"MNIST files are missing from {folder.resolve()} and could not be fetched: {why}\n"
            f"Expected these files (uncompressed IDX, or their .gz from the official site):\n  "
            f"{names}\n"
            f"Place them there by hand, point paths.data_dir (or HWGAN_DATA_DIR) at a folder that "
            f"holds MNIST/raw/, or use the embedded subset with dataset=mnist_sample."
        )


class MNISTSampleDataModule(ImageDataModule):
    """A real MNIST subset inside the package: the first 10,000 training and 1,000 test images."""

    class_names = DIGITS
    asset = "mnist_sample"

    def _load(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        prefix = "train" if train else "t10k"
        folder = resources.files("handwriting_gan.data") / "assets" / self.asset
        images = read_idx_gz(folder / f"{prefix}-images-idx3-ubyte.gz")
        labels = read_idx_gz(folder / f"{prefix}-labels-idx1-ubyte.gz")
        return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))


def read_idx_gz(path) -> np.ndarray:
    """Read a gzip-compressed IDX file of unsigned bytes (MNIST's format) into an array."""
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file (bad magic number).")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape))
    if len(data) - offset != expected:
        raise DataError(
            f"{path} holds {len(data) - offset} bytes of data but its header says {shape}; "
            f"the file is truncated or corrupt."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape).copy()


def read_idx(path: Path) -> np.ndarray:
    """An unsigned-byte IDX file, gzip-compressed (`.gz`) or plain, as an array."""
    if path.suffix == ".gz":
        return read_idx_gz(path)
    try:
        return read_sn3_pascalvincent_tensor(str(path), strict=True).numpy()
    except (AssertionError, RuntimeError, ValueError, KeyError) as exc:
        raise DataError(
            f"{path} is not a complete unsigned-byte IDX file ({exc or type(exc).__name__}); it is truncated "
            f"or corrupt. Replace it with the one from the official archive."
        ) from None
