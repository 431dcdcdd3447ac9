"""Augmenters by name (handwriting_gan/augmenter.py): the shipped one, run folders and generator files,
image- and class-conditional, and the mistakes a user can make with them."""

from pathlib import Path

import pytest
import torch

import handwriting_gan.augmenter as augmenter_module
from handwriting_gan.augmenter import SHIPPED, Augmenter, augmenter_file, shipped_path
from handwriting_gan.config import compose_config
from handwriting_gan.errors import CheckpointError, ConfigError
from tests_support import FAST, train_in_process, write_untrained_run

TINY_DAGAN = [*FAST, "model=dagan", "model.generator.channels=8", "model.discriminator.channels=8"]


@pytest.fixture(scope="module")
def dagan_run(tmp_path_factory) -> Path:
    return train_in_process([*TINY_DAGAN, "trainer.max_epochs=1"], tmp_path_factory.mktemp("aug") / "run")


def images_of(n: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, 28, 28, generator=generator) > 0.8).to(torch.uint8) * 255


def test_a_run_folder_and_its_generator_file_load_the_same_augmenter(dagan_run):
    by_folder, by_file = Augmenter.load(dagan_run), Augmenter.load(dagan_run / "generator.pt")
    images, labels = images_of(4), torch.tensor([0, 1, 2, 3])
    a = by_folder.vary(images, labels, copies=3, seed=7)
    b = by_file.vary(images, labels, copies=3, seed=7)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert by_folder.describe()["kind"] == "image-conditional"
    assert by_folder.describe()["image_shape"] == [1, 28, 28]


def test_variations_follow_the_seed_and_leave_the_callers_random_state_alone(dagan_run):
    augmenter = Augmenter.load(dagan_run)
    images, labels = images_of(5), torch.arange(5)
    state = torch.random.get_rng_state()
    first, _, sources = augmenter.vary(images, labels, copies=2, seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert sources.tolist() == [0, 1, 2, 3, 4] * 2
    assert not torch.equal(first, augmenter.vary(images, labels, copies=2, seed=2)[0])
    # Batches of any size give the same images: the noise is drawn for all of them at once.
    augmenter.batch_size = 3
    assert torch.equal(first, augmenter.vary(images, labels, copies=2, seed=1)[0])


def test_zero_copies_make_nothing(dagan_run):
    made, labels, sources = Augmenter.load(dagan_run).vary(images_of(3), torch.arange(3), copies=0, seed=0)
    assert len(made) == len(labels) == len(sources) == 0


def test_a_class_conditional_run_draws_for_the_labels_and_must_match_the_classes(tmp_path):
    cfg = compose_config([*FAST, "model=cdcgan", "model.generator.num_classes=10"])
    run = write_untrained_run(cfg, tmp_path / "cdcgan")
    augmenter = Augmenter.load(run)
    assert not augmenter.image_conditional
    made, labels, _ = augmenter.vary(images_of(2), torch.tensor([3, 4]), copies=2, seed=0)
    assert made.shape == (4, 1, 28, 28) and labels.tolist() == [3, 4, 3, 4]
    with pytest.raises(ConfigError, match="class-conditional on"):
        augmenter.check_fits((1, 28, 28), ["a", "b"])


def test_the_image_size_must_fit(dagan_run):
    with pytest.raises(ConfigError, match=r"makes \[1, 28, 28\] images but the dataset's are \[1, 32, 32\]"):
        Augmenter.load(dagan_run).check_fits((1, 32, 32), ["a"])


def test_an_unconditional_generator_cannot_augment_a_labelled_dataset(tmp_path):
    run = write_untrained_run(compose_config(FAST), tmp_path / "mlp")
    with pytest.raises(CheckpointError, match="unconditional generator"):
        Augmenter.load(run)


def test_a_name_that_is_neither_shipped_nor_a_run_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="neither a shipped augmenter"):
        augmenter_file(tmp_path / "nothing")


def test_a_shipped_augmenter_missing_from_the_installation_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setattr(augmenter_module, "shipped_path", lambda name: tmp_path / "gone.pt")
    with pytest.raises(CheckpointError, match="make augmenter"):
        augmenter_file("omniglot")


def test_the_shipped_augmenter_loads_without_network_and_varies_images():
    assert set(SHIPPED) == {"omniglot"}
    path = shipped_path("omniglot")
    assert path.is_file(), f"{path} is missing: `make augmenter` writes it"
    assert path.stat().st_size < 5_000_000  # "a few MB"
    augmenter = Augmenter.load("omniglot")
    assert augmenter.image_conditional and augmenter.image_shape == (1, 28, 28)
    images = images_of(4)
    made, _, _ = augmenter.vary(images, torch.arange(4), copies=2, seed=0)
    assert made.shape == (8, 1, 28, 28) and not torch.equal(made[:4], images)
