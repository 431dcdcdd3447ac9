"""Labelled and unlabelled images (data/base.py: label_split; data/batches.py:
SemiSupervisedBatches; data/folder.py: the pool of dataset.unlabeled): a hidden label never reaches a batch,
the draw is seeded and balanced, batches resume exactly, and every bad pool is refused with one clear
message."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from handwriting_gan.data.base import UNLABELLED
from handwriting_gan.data.batches import SemiSupervisedBatches
from handwriting_gan.data.fake import FakeDataModule
from handwriting_gan.data.folder import FolderDataModule
from handwriting_gan.errors import ConfigError, DataError


def fake(**kwargs) -> FakeDataModule:
    options = dict(size=200, num_classes=4, batch_size=16, image_shape=[1, 28, 28], sample_grid=2, seed=3)
    return FakeDataModule(**{**options, **kwargs})


def all_batches(datamodule) -> list[tuple[torch.Tensor, torch.Tensor]]:
    datamodule.setup("fit")
    return [datamodule.on_after_batch_transfer(batch, 0) for batch in datamodule.train_dataloader()]


def test_labels_per_class_keeps_k_balanced_labels_and_hides_the_rest():
    datamodule = fake(labels_per_class=5, labels_validation=2)
    split = datamodule.label_split()
    images, labels = datamodule.split(train=True)
    assert torch.bincount(split.labelled[1], minlength=4).tolist() == [3, 3, 3, 3]
    assert torch.bincount(split.validation[1], minlength=4).tolist() == [2, 2, 2, 2]
    assert len(split.labelled[0]) + len(split.validation[0]) + len(split.unlabelled) == len(images)
    # The unlabelled images are the training images that were not picked, each exactly once.
    assert torch.equal(images[split.source_index], split.unlabelled)
    assert torch.equal(labels[split.source_index], datamodule.hidden_labels())
    assert split.source_index.unique().numel() == len(split.source_index)


def test_no_hidden_label_reaches_a_training_batch():
    datamodule = fake(labels_per_class=4)
    split = datamodule.label_split()
    labelled_images = split.labelled[0].float().div(127.5).sub(1).flatten(1)
    seen_unlabelled = 0
    for images, labels in all_batches(datamodule):
        assert len(images) == 32  # 16 labelled + 16 unlabelled
        unlabelled = labels == UNLABELLED
        assert unlabelled.sum() == 16
        seen_unlabelled += int(unlabelled.sum())
        # Every labelled image of a batch is one of the K per class, with its own label.
        for image, label in zip(images[~unlabelled].flatten(1), labels[~unlabelled], strict=True):
            match = (labelled_images == image).all(dim=1)
            assert match.any() and label in split.labelled[1][match]
    # One epoch is one pass over the larger (unlabelled) set.
    assert seen_unlabelled == (len(split.unlabelled) // 16) * 16


def test_the_draw_depends_on_the_seed_and_a_smaller_k_keeps_a_subset():
    first = fake(labels_per_class=5).label_split().labelled[0]
    again = fake(labels_per_class=5).label_split().labelled[0]
    other = fake(labels_per_class=5, seed=4).label_split().labelled[0]
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    fewer = fake(labels_per_class=2).label_split().labelled[0].flatten(1)
    assert all((first.flatten(1) == image).all(dim=1).any() for image in fewer)


def test_batches_resume_inside_an_epoch_exactly():
    sampler = SemiSupervisedBatches(7, 50, batch_size=10, seed=1)
    sampler.set_epoch(2)
    uninterrupted = list(sampler)
    assert len(uninterrupted) == 5 and all(len(b) == 20 for b in uninterrupted)
    assert all((b[:10] < 7).all() and (b[10:] >= 7).all() for b in uninterrupted)
    resumed = SemiSupervisedBatches(7, 50, batch_size=10, seed=1)
    resumed.load_state_dict({"epoch": 2, "taken": 3})
    resumed.set_epoch(2)
    assert [b.tolist() for b in resumed] == [b.tolist() for b in uninterrupted[3:]]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"labels_per_class": 0}, "labels_per_class=0"),
        ({"labels_per_class": 3, "labels_validation": 3}, "must be below"),
        ({"labels_validation": -1}, "labels_validation=-1"),
    ],
)
def test_bad_label_settings_are_refused(options, message):
    with pytest.raises(ConfigError, match=message):
        fake(**options)


def test_asking_for_more_labels_than_a_class_has_is_refused():
    with pytest.raises(ConfigError, match="needs 500 training images of every class"):
        fake(labels_per_class=500).label_split()


# -- dataset=folder with a pool of unlabelled images ---------------------------------------------------
def draw(path, seed: int, size: int = 20) -> None:
    """A distinct scribble for each seed: a few random strokes of ink on white."""
    path.parent.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.full((size, size), 255, dtype=torch.uint8)
    for _ in range(3):
        row, col = torch.randint(3, size - 3, (2,), generator=generator).tolist()
        pixels[row, 3 : size - 3] = 0
        pixels[3 : size - 3, col] = 0
    Image.fromarray(pixels.numpy()).save(path)


@pytest.fixture
def folders(tmp_path):
    labelled, pool = tmp_path / "labelled", tmp_path / "pool"
    for c in ("a", "b"):
        for i in range(3):
            draw(labelled / c / f"{i}.png", i + (5 if c == "b" else 0))
    for i in range(6):
        draw(pool / ("nested" if i % 2 else "") / f"p{i}.png", 10 + i)
    return labelled, pool


def folder(labelled, pool, tmp_path, **kwargs) -> FolderDataModule:
    return FolderDataModule(
        path=str(labelled),
        cache_dir=str(tmp_path / "cache"),
        unlabeled=None if pool is None else str(pool),
        test_fraction=0.0,
        batch_size=4,
        sample_grid=2,
        **kwargs,
    )


def test_a_pool_in_any_layout_is_the_unlabelled_part(folders, tmp_path):
    labelled, pool = folders
    datamodule = folder(labelled, pool, tmp_path)
    assert datamodule.semi_supervised
    assert datamodule.pool_files() == (
        "nested/p1.png",
        "nested/p3.png",
        "nested/p5.png",
        "p0.png",
        "p2.png",
        "p4.png",
    )
    split = datamodule.label_split()
    assert len(split.labelled[0]) == 6 and len(split.unlabelled) == 6
    assert split.source_index.tolist() == list(range(6))
    assert datamodule.hidden_labels() is None


def test_pool_copies_of_labelled_images_and_junk_are_dropped_and_counted(folders, tmp_path, caplog):
    labelled, pool = folders
    (pool / "copy.png").write_bytes((labelled / "a" / "0.png").read_bytes())
    (pool / "junk.png").write_bytes(b"not an image")
    Image.new("L", (20, 20), 255).save(pool / "blank.png")
    with caplog.at_level("WARNING"):
        split = folder(labelled, pool, tmp_path).label_split()
    assert len(split.unlabelled) == 6
    files = folder(labelled, pool, tmp_path).pool_files()
    kept = {files[i] for i in split.source_index.tolist()}
    assert not kept & {"copy.png", "junk.png", "blank.png"}
    assert "Dropped 1 pool images byte-identical" in caplog.text
    assert "Skipped 2 of 9 images" in caplog.text


def test_a_pool_image_of_a_labelled_images_size_but_other_bytes_is_kept(folders, tmp_path, caplog):
    labelled, pool = folders
    # BMP files of one size in pixels have one size in bytes: equal sizes, different drawings.
    draw(labelled / "a" / "3.bmp", 40)
    draw(pool / "other.bmp", 41)
    (pool / "copy.bmp").write_bytes((labelled / "a" / "3.bmp").read_bytes())
    assert (pool / "other.bmp").stat().st_size == (labelled / "a" / "3.bmp").stat().st_size
    assert (pool / "other.bmp").read_bytes() != (labelled / "a" / "3.bmp").read_bytes()
    datamodule = folder(labelled, pool, tmp_path)
    with caplog.at_level("WARNING"):
        split = datamodule.label_split()
    kept = {datamodule.pool_files()[i] for i in split.source_index.tolist()}
    assert "other.bmp" in kept and "copy.bmp" not in kept
    assert len(kept) == 7
    assert "Dropped 1 pool images byte-identical" in caplog.text


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.write_text("x"), "is a file, not a folder"),
        (lambda p: p.mkdir(), "holds no image file"),
        (lambda p: (p.mkdir(), (p / "x.png").write_bytes(b"junk")), "has no usable image"),
    ],
)
def test_bad_pools_are_refused_with_one_message(folders, tmp_path, make, message):
    labelled, _ = folders
    pool = tmp_path / "bad_pool"
    make(pool)
    with pytest.raises(DataError, match=message):
        folder(labelled, pool, tmp_path).label_split()
    assert not (tmp_path / "cache" / "folder").exists() or not list(
        (tmp_path / "cache" / "folder").glob("bad_pool*")
    )


def test_a_pool_and_hidden_labels_together_are_refused(folders, tmp_path):
    labelled, pool = folders
    with pytest.raises(ConfigError, match="not both"):
        folder(labelled, pool, tmp_path, labels_per_class=1).label_split()
