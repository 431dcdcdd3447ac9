"""The domain classifier: its settings, its augmentation, determinism, and MNIST accuracy."""

import dataclasses
import logging
import time

import pytest
import torch
from hydra.utils import instantiate

from handwriting_gan.errors import ConfigError
from handwriting_gan.metrics.cache import load_or_train
from handwriting_gan.metrics.classifier import (
    ClassifierSettings,
    DomainClassifier,
    extract,
    fit_classifier,
    shift,
)


def test_settings_from_config_keep_defaults_and_reject_unknown_or_bad_values():
    settings = ClassifierSettings.from_mapping({"epochs": 5, "channels": [4, 8]})
    assert settings.epochs == 5 and settings.channels == (4, 8) and settings.lr == ClassifierSettings().lr
    with pytest.raises(ConfigError, match="'epoch'"):
        ClassifierSettings.from_mapping({"epoch": 5})
    with pytest.raises(ConfigError, match="classifier.lr=0"):
        ClassifierSettings.from_mapping({"lr": 0})
    with pytest.raises(ConfigError, match="classifier.min_steps=-1 must be 0 or more"):
        ClassifierSettings.from_mapping({"min_steps": -1})


def test_a_small_dataset_trains_for_more_epochs_until_min_steps():
    settings = ClassifierSettings(epochs=3, batch_size=128, min_steps=1000)
    assert settings.epochs_for(60_000) == 3  # MNIST: 3 x 469 = 1,407 steps already
    assert settings.epochs_for(312) == 334  # Omniglot Latin's training split: 3 steps an epoch
    assert settings.epochs_for(128) == 1000 and settings.epochs_for(1) == 1000
    assert ClassifierSettings(epochs=3, min_steps=0).epochs_for(312) == 3


def test_training_runs_min_steps_and_logs_ten_lines_at_most(fake_data, tiny, caplog):
    images, labels = fake_data(size=64).split(train=True)  # 4 batches of 16 an epoch
    settings = dataclasses.replace(tiny, epochs=1, min_steps=200)
    with caplog.at_level(logging.INFO, logger="handwriting_gan.metrics.classifier"):
        fit_classifier(images, labels, 10, settings)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("classifier epoch")]
    assert 1 <= len(lines) <= 11 and lines[-1].startswith("classifier epoch 50/50:")


def test_features_are_the_penultimate_layer_and_tiny_images_need_fewer_stages():
    classifier = DomainClassifier((1, 28, 28), num_classes=10, channels=(4, 8), feature_dim=24)
    features, predictions = extract(classifier, torch.zeros(5, 1, 28, 28, dtype=torch.uint8))
    assert features.shape == (5, 24) and predictions.shape == (5,)
    with pytest.raises(ConfigError, match="too many"):
        DomainClassifier((1, 4, 4), num_classes=10, channels=(4, 8, 16))


def test_shift_moves_each_image_by_whole_pixels_and_pads_with_blank_paper():
    image = torch.full((1, 1, 8, 8), -1.0)
    image[0, 0, 3, 4] = 1.0  # one ink pixel
    shifted = shift(image.repeat(200, 1, 1, 1), max_shift=2, generator=torch.Generator().manual_seed(0))
    assert shifted.shape == (200, 1, 8, 8)
    assert torch.all((shifted == 1.0).sum(dim=(1, 2, 3)) == 1)  # the pixel moved, nothing else appeared
    assert set(shifted.unique().tolist()) == {-1.0, 1.0}
    rows, cols = (shifted[:, 0] == 1.0).nonzero()[:, 1:].T
    assert set(rows.tolist()) == {1, 2, 3, 4, 5} and set(cols.tolist()) == {2, 3, 4, 5, 6}


def test_training_is_deterministic_and_leaves_the_global_random_state_alone(fake_data, tiny):
    images, labels = fake_data(size=128).split(train=True)
    state = torch.random.get_rng_state()
    first = fit_classifier(images, labels, 10, tiny)
    assert torch.equal(torch.random.get_rng_state(), state)
    second = fit_classifier(images, labels, 10, tiny)
    assert torch.equal(extract(first, images)[0], extract(second, images)[0])


@pytest.mark.slow
def test_the_default_mnist_classifier_reaches_99_percent_on_the_real_test_split(
    mnist_root, compose, tmp_path
):
    cfg = compose(["dataset=mnist", f"paths.data_dir={mnist_root}", "dataset.download=false"])
    started = time.perf_counter()
    cached = load_or_train(instantiate(cfg.dataset), tmp_path, ClassifierSettings())
    seconds = time.perf_counter() - started
    print(f"MNIST classifier: {cached.test_acc:.4f} test accuracy, trained in {seconds:.0f} s")
    assert cached.trained and cached.test_acc >= 0.99
