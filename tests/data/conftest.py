"""Fixtures of the dataset tests: the real data beside the project (skipped when absent) and a small MNIST
domain classifier to read its digits with."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from handwriting_gan.data.mnist import MNISTSampleDataModule
from handwriting_gan.metrics.cache import load_or_train
from handwriting_gan.metrics.classifier import ClassifierSettings, DomainClassifier

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("HWGAN_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def emnist_subset_root() -> Path:
    """The folder holding EMNIST/raw with the real EMNIST balanced subset (the first 2,000 training and
    2,000 test images of the official files); skips when absent."""
    root = SHARED_DATA / "emnist_balanced_subset"
    if not (root / "EMNIST" / "raw" / "emnist-balanced-train-images-idx3-ubyte.gz").is_file():
        pytest.skip(
            f"the real EMNIST balanced subset is not under {root / 'EMNIST' / 'raw'} "
            f"(set HWGAN_SHARED_DATA to the folder holding emnist_balanced_subset/)"
        )
    return root


@pytest.fixture(scope="session")
def chars74k_root() -> Path:
    """The folder holding Chars74K/English/Hnd/Img, the real EnglishHnd as unpacked; skips when absent."""
    if not (SHARED_DATA / "Chars74K" / "English" / "Hnd" / "Img").is_dir():
        pytest.skip(
            f"the real Chars74K tree is not under {SHARED_DATA / 'Chars74K' / 'English' / 'Hnd' / 'Img'} "
            f"(set HWGAN_SHARED_DATA to the folder holding Chars74K/)"
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def mnist_reader(tmp_path_factory) -> DomainClassifier:
    """An MNIST domain classifier small enough to train in seconds, on the real MNIST sample inside the
    package: 96.8% on its test split, in 5-15 s (the default one reaches 99.3% on full MNIST, in a minute or
    more)."""
    datamodule = MNISTSampleDataModule(batch_size=64, image_shape=[1, 28, 28], sample_grid=4)
    settings = ClassifierSettings(channels=(8, 16), feature_dim=64, epochs=1, min_steps=300)
    # One thread: on a few shared cores, two threads of small convolutions took six times as long.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cached = load_or_train(datamodule, tmp_path_factory.mktemp("classifiers"), settings)
    finally:
        torch.set_num_threads(threads)
    assert cached.test_acc > 0.95, "the small MNIST classifier itself reads MNIST badly"
    return cached.classifier
