"""Fixtures of the metric tests: small fake data and a tiny domain classifier trained on it once."""

from __future__ import annotations

import pytest

from handwriting_gan.data.fake import FakeDataModule
from handwriting_gan.metrics.cache import load_or_train
from handwriting_gan.metrics.classifier import ClassifierSettings
from handwriting_gan.metrics.report import RealReference


@pytest.fixture(scope="session")
def tiny() -> ClassifierSettings:
    """Trains in well under a second on the fake data and classifies its test split perfectly."""
    return ClassifierSettings(channels=(8, 16), feature_dim=32, epochs=3, batch_size=16, min_steps=0)


@pytest.fixture(scope="session")
def fake_data():
    """fake_data(**overrides) -> 512 training and 256 test images of 10 fake classes."""

    def _fake_data(**overrides) -> FakeDataModule:
        settings = dict(
            size=512, num_classes=10, test_size=256, batch_size=16, image_shape=[1, 28, 28], sample_grid=4
        )
        return FakeDataModule(**{**settings, **overrides})

    return _fake_data


@pytest.fixture(scope="session")
def reference(tmp_path_factory, fake_data, tiny) -> RealReference:
    """The fake data's real splits and features under a cached tiny classifier."""
    datamodule = fake_data()
    return RealReference(datamodule, load_or_train(datamodule, tmp_path_factory.mktemp("cache"), tiny))
