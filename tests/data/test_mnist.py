"""MNIST: the embedded sample, the full dataset from a folder, batching and the missing-files error."""

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from torchvision.datasets import MNIST

from handwriting_gan.data.batches import ShuffledBatches
from handwriting_gan.data.mnist import MNISTDataModule, MNISTSampleDataModule
from handwriting_gan.errors import DataError


def sample_module(**kwargs) -> MNISTSampleDataModule:
    return MNISTSampleDataModule(batch_size=64, image_shape=[1, 28, 28], sample_grid=4, **kwargs)


def test_embedded_sample_has_a_train_and_a_held_out_test_part():
    dm = sample_module()
    train_images, train_labels = dm.split(train=True)
    test_images, test_labels = dm.split(train=False)
    assert train_images.shape == (10_000, 1, 28, 28) and train_images.dtype == torch.uint8
    assert test_images.shape == (1_000, 1, 28, 28)
    assert set(train_labels.tolist()) == set(range(10)) == set(test_labels.tolist())
    # Every digit is well represented (MNIST's first 10k are roughly balanced).
    assert torch.bincount(train_labels).min() > 800
    assert dm.class_names == tuple("0123456789")


def test_embedded_sample_is_the_start_of_real_mnist(mnist_root):
    real_train = MNIST(str(mnist_root), train=True)
    real_test = MNIST(str(mnist_root), train=False)
    dm = sample_module()
    images, labels = dm.split(train=True)
    assert torch.equal(images[:, 0], real_train.data[:10_000])
    assert torch.equal(labels, real_train.targets[:10_000])
    assert torch.equal(dm.split(train=False)[0][:, 0], real_test.data[:1_000])


def test_full_mnist_reads_a_read_only_folder_offline(mnist_root, compose):
    before = sorted((p, p.stat().st_mtime_ns) for p in mnist_root.rglob("*"))
    cfg = compose(["dataset=mnist", f"paths.data_dir={mnist_root}", "dataset.download=true"])
    dm = instantiate(cfg.dataset)
    images, labels = dm.split(train=True)
    assert images.shape == (60_000, 1, 28, 28)
    assert labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    # Training-set statistics quoted by the data's README.
    pixels = images.float() / 255
    assert pixels.mean().item() == pytest.approx(0.1307, abs=1e-3)
    assert pixels.std().item() == pytest.approx(0.3081, abs=1e-3)
    assert len(dm.split(train=False)[0]) == 10_000
    assert sorted((p, p.stat().st_mtime_ns) for p in mnist_root.rglob("*")) == before  # nothing written


def test_batches_are_scaled_to_the_tanh_range_after_transfer():
    dm = sample_module(seed=3)
    dm.setup("fit")
    images, labels = next(iter(dm.train_dataloader()))
    assert images.dtype == torch.uint8 and images.shape == (64, 1, 28, 28)
    scaled, _ = dm.on_after_batch_transfer((images, labels), 0)
    assert scaled.dtype == torch.float32
    assert scaled.min().item() == -1.0 and scaled.max().item() == 1.0
    assert torch.allclose((scaled + 1) * 127.5, images.float())


def test_batch_order_depends_only_on_seed_and_epoch():
    def epoch_order(seed, epoch):
        sampler = ShuffledBatches(100, 10, seed)
        sampler.set_epoch(epoch)
        return torch.cat(list(sampler))

    first = epoch_order(seed=1, epoch=0)
    assert torch.equal(first, epoch_order(seed=1, epoch=0))
    assert not torch.equal(first, epoch_order(seed=1, epoch=1))
    assert not torch.equal(first, epoch_order(seed=2, epoch=0))
    assert sorted(first.tolist()) == list(range(100))  # every image once per epoch


def test_last_partial_batch_is_dropped():
    batches = list(ShuffledBatches(105, 10, seed=0))
    assert len(batches) == len(ShuffledBatches(105, 10, seed=0)) == 10
    assert all(len(b) == 10 for b in batches)


def test_missing_files_without_download_name_folder_and_files(tmp_path):
    dm = MNISTDataModule(
        root=str(tmp_path), download=False, batch_size=8, image_shape=[1, 28, 28], sample_grid=4
    )
    with pytest.raises(DataError) as error:
        dm.split(train=True)
    message = str(error.value)
    assert str(tmp_path / "MNIST" / "raw") in message
    assert "train-images-idx3-ubyte" in message and "t10k-labels-idx1-ubyte" in message
    assert "dataset=mnist_sample" in message
    assert not any(tmp_path.iterdir())  # nothing created


def test_failed_download_is_a_data_error_not_a_traceback(tmp_path, monkeypatch):
    # A closed local port stands in for an unreachable mirror: fails at once, offline or not.
    monkeypatch.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/"])
    dm = MNISTDataModule(root=str(tmp_path), batch_size=8, image_shape=[1, 28, 28], sample_grid=4)
    with pytest.raises(DataError, match="Download failed"):
        dm.split(train=True)


def test_image_shape_mismatch_is_reported():
    dm = MNISTSampleDataModule(batch_size=8, image_shape=[1, 32, 32], sample_grid=4)
    with pytest.raises(DataError, match=r"dataset.image_shape=\[1, 32, 32\]"):
        dm.split(train=True)


def test_idx_reader_rejects_truncated_files(tmp_path):
    import gzip

    from handwriting_gan.data.mnist import read_idx_gz

    header = np.array([0x00000803, 2, 28, 28], dtype=">u4").tobytes()
    path = tmp_path / "short-images-idx3-ubyte.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(header + bytes(28 * 28))  # one image of the two promised
    with pytest.raises(DataError, match="truncated"):
        read_idx_gz(path)
