"""The domain-classifier cache: trained once per dataset and settings, then loaded."""

import json
from dataclasses import replace
from pathlib import Path

import torch

from handwriting_gan.config import compose_config
from handwriting_gan.metrics.cache import classifier_path, load_or_train
from handwriting_gan.metrics.classifier import ClassifierSettings, extract


def test_a_second_call_loads_the_cached_classifier_instead_of_training(tmp_path, fake_data, tiny):
    datamodule = fake_data(size=128, test_size=64)
    first = load_or_train(datamodule, tmp_path, tiny)
    written = first.path.stat().st_mtime_ns
    second = load_or_train(datamodule, tmp_path, tiny)
    assert first.trained and not second.trained
    assert second.path == first.path and second.path.stat().st_mtime_ns == written
    assert second.test_acc == first.test_acc == 1.0  # the fake classes are easy to tell apart
    images = datamodule.split(train=False)[0]
    assert torch.equal(extract(first.classifier, images)[0], extract(second.classifier, images)[0])
    record = json.loads(first.path.with_suffix(".json").read_text())
    assert record["test_acc"] == first.test_acc and record["settings"]["channels"] == [8, 16]
    assert [p.name for p in sorted(tmp_path.rglob("*"))] == [
        "classifiers",
        first.path.with_suffix(".json").name,
        first.path.name,
    ]


def test_the_cache_key_changes_with_settings_and_with_the_data(tmp_path, fake_data, tiny):
    datamodule = fake_data(size=128)
    path = classifier_path(datamodule, tmp_path, tiny)
    assert classifier_path(datamodule, tmp_path, replace(tiny, epochs=4)) != path
    assert classifier_path(datamodule, tmp_path, replace(tiny, seed=1)) != path
    assert classifier_path(fake_data(size=128, seed=1), tmp_path, tiny) != path
    assert classifier_path(fake_data(size=128), tmp_path, tiny) == path
    assert path.parent == Path(tmp_path) / "classifiers" and path.name.startswith("FakeDataModule-")


def test_an_unreadable_cache_file_is_retrained(tmp_path, fake_data, tiny):
    datamodule = fake_data(size=128)
    path = classifier_path(datamodule, tmp_path, tiny)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    cached = load_or_train(datamodule, tmp_path, tiny)
    assert cached.trained and load_or_train(datamodule, tmp_path, tiny).trained is False


def test_evaluation_and_training_callback_default_to_the_same_classifier():
    """Equal settings give one cache entry for both `evaluate` and the quality callback."""
    evaluate = compose_config(["run_dir=x"], config_name="evaluate").classifier
    callback = compose_config(["debug=fast"], run_dir="/unused").callbacks.quality.classifier
    defaults = ClassifierSettings()
    assert ClassifierSettings.from_mapping(evaluate) == defaults == ClassifierSettings.from_mapping(callback)


def test_a_few_shot_dataset_is_measured_with_the_classifier_of_all_its_images(tmp_path, fake_data, tiny):
    """per_class limits what the GAN sees, not what it is judged by: the domain classifier of a few-shot
    split is the full dataset's (same cache file), and the per_class split itself is left as it was."""
    few = fake_data(size=200, test_size=50, per_class=3)
    assert len(few.split(train=True)[0]) == 30
    cached = load_or_train(few, tmp_path, tiny)
    assert cached.path == classifier_path(fake_data(size=200, test_size=50), tmp_path, tiny)
    assert json.loads(cached.path.with_suffix(".json").read_text())["num_train"] == 200
    assert len(few.split(train=True)[0]) == 30
