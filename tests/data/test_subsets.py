"""Class restriction (`dataset.classes`) and few-shot subsets (`dataset.per_class`) for every dataset."""

import pytest
import torch

from handwriting_gan.data.fake import FakeDataModule
from handwriting_gan.data.mnist import MNISTSampleDataModule
from handwriting_gan.errors import ConfigError


def mnist(**kwargs) -> MNISTSampleDataModule:
    return MNISTSampleDataModule(batch_size=8, image_shape=[1, 28, 28], sample_grid=4, **kwargs)


def test_classes_restrict_both_splits_and_keep_dataset_wide_labels():
    full_train, full_labels = mnist().split(train=True)
    dm = mnist(classes=[7, 3])  # Hydra gives ints for dataset.classes=[7,3]
    images, labels = dm.split(train=True)
    _, test_labels = dm.split(train=False)
    assert set(labels.tolist()) == {3, 7} and set(test_labels.tolist()) == {3, 7}
    # Every 3 and 7 of the training split is kept, in the dataset's order, nothing else.
    wanted = (full_labels == 3) | (full_labels == 7)
    assert torch.equal(images, full_train[wanted]) and torch.equal(labels, full_labels[wanted])
    # The label table is unchanged, so label 7 still reads "7" in grids and exports.
    assert dm.class_names == tuple("0123456789") and dm.num_classes == 10
    assert dm.selected_labels == (7, 3)


def test_per_class_keeps_n_training_images_of_each_class_and_the_whole_test_split():
    dm = mnist(per_class=5, seed=1)
    _, labels = dm.split(train=True)
    assert torch.bincount(labels).tolist() == [5] * 10
    assert len(dm.split(train=False)[0]) == len(mnist().split(train=False)[0]) == 1_000


def test_few_shot_picks_depend_only_on_the_seed():
    picks = mnist(per_class=4, seed=1).split(train=True)[0]
    assert torch.equal(picks, mnist(per_class=4, seed=1).split(train=True)[0])
    assert not torch.equal(picks, mnist(per_class=4, seed=2).split(train=True)[0])


def test_few_shot_picks_are_nested_and_independent_of_other_classes():
    def sevens(**kwargs):
        images, labels = mnist(seed=5, **kwargs).split(train=True)
        return {bytes(image.numpy()) for image in images[labels == 7]}

    three = sevens(per_class=3)
    assert len(three) == 3
    assert three < sevens(per_class=10)  # a larger budget adds images, never swaps them
    assert three == sevens(per_class=3, classes=["7"])


def test_per_class_larger_than_a_class_names_key_value_and_the_maximum():
    def fake(**kwargs) -> FakeDataModule:
        return FakeDataModule(
            size=40, num_classes=4, batch_size=4, image_shape=[1, 8, 8], sample_grid=2, **kwargs
        )

    counts = torch.bincount(fake().split(train=True)[1])
    with pytest.raises(ConfigError) as error:
        fake(per_class=50).split(train=True)
    message = str(error.value)
    assert "dataset.per_class=50" in message
    assert f"has only {counts.min().item()}, the most available" in message
    assert f"Use dataset.per_class={counts.min().item()} or less" in message


@pytest.mark.parametrize("per_class", [0, -3])
def test_per_class_must_be_positive(per_class):
    with pytest.raises(ConfigError, match=f"dataset.per_class={per_class}"):
        mnist(per_class=per_class)


def test_unknown_class_is_named_with_the_valid_ones():
    with pytest.raises(ConfigError) as error:
        mnist(classes=["3", "x"]).split(train=True)
    assert "['x']" in str(error.value) and "0 1 2 3 4 5 6 7 8 9" in str(error.value)


@pytest.mark.parametrize("classes", [[], ["3", "3"]])
def test_empty_or_repeated_classes_are_rejected(classes):
    with pytest.raises(ConfigError, match="dataset.classes"):
        mnist(classes=classes)


def test_a_subset_smaller_than_a_batch_is_one_whole_batch(caplog):
    dm = MNISTSampleDataModule(batch_size=64, image_shape=[1, 28, 28], sample_grid=4, per_class=2)
    with caplog.at_level("INFO"):
        dm.setup("fit")
        dm.setup("fit")  # Lightning sets up again: still one line
    assert [r.getMessage() for r in caplog.records].count(
        "dataset.batch_size=64 is larger than the 20 training images: each batch is the whole split."
    ) == 1
    batches = list(dm.train_dataloader())
    assert len(batches) == 1 and len(batches[0][0]) == 20
