"""CAS on real MNIST digits (the embedded sample): real 'generated' data approaches real accuracy."""

import pytest
import torch

from handwriting_gan.data.mnist import MNISTSampleDataModule
from handwriting_gan.metrics.cas import classification_accuracy_score
from handwriting_gan.metrics.classifier import ClassifierSettings

# Small enough for a test (about 2 s for both arms), large enough that two training runs on different
# real digits land within a couple of points of each other.
SMALL = ClassifierSettings(channels=(8, 16), feature_dim=32, epochs=3, batch_size=32, min_steps=0)
COUNT = 2000


@pytest.fixture(scope="module")
def mnist_sample():
    datamodule = MNISTSampleDataModule(batch_size=64, image_shape=[1, 28, 28], sample_grid=4)
    return datamodule.split(train=True), datamodule.split(train=False)


def test_cas_of_held_out_real_digits_approaches_the_real_accuracy(mnist_sample):
    (images, labels), test = mnist_sample
    # "Generated" = real digits outside the pool the real-data arm draws its 2000 from.
    generated = images[5000 : 5000 + COUNT], labels[5000 : 5000 + COUNT]
    values = classification_accuracy_score(*generated, (images[:5000], labels[:5000]), test, 10, SMALL)
    assert values["cas_num_generated"] == values["cas_num_real"] == COUNT
    assert values["cas_real"] > 0.85
    assert values["cas"] == pytest.approx(values["cas_real"], abs=0.04)


def test_cas_of_wrongly_labeled_digits_is_near_chance(mnist_sample):
    (images, labels), test = mnist_sample
    shuffled = labels[5000 : 5000 + COUNT][torch.randperm(COUNT, generator=torch.Generator().manual_seed(0))]
    values = classification_accuracy_score(
        images[5000 : 5000 + COUNT], shuffled, (images[:5000], labels[:5000]), test, 10, SMALL
    )
    assert values["cas"] < 0.3 and values["cas_real"] > 0.85
