"""EMNIST from fabricated files in the official format and torchvision's layout (offline loading,
orientation, class names and the mapping file, splits, subsets, every error path, a tiny training run),
and the real EMNIST balanced subset when ../shared/data has it: upright and unmirrored as an MNIST
classifier reads its digits, labels as the official mapping names them, grids in class order."""

import gzip
import hashlib
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets.mnist
import torchvision.datasets.utils
from hydra.utils import instantiate
from PIL import Image
from torchvision.datasets import EMNIST

from handwriting_gan.callbacks import samples
from handwriting_gan.callbacks.samples import SampleGrid
from handwriting_gan.data.emnist import SPLIT_CLASSES, EMNISTDataModule
from handwriting_gan.errors import ConfigError, DataError
from handwriting_gan.metrics.classifier import accuracy

# The labels of the official emnist-balanced-mapping.txt, as ASCII codes in label order.
BALANCED_MAPPING = [*range(48, 58), *range(65, 91), 97, 98, 100, 101, 102, 103, 104, 110, 113, 114, 116]
TRAIN_PER_CLASS = 3


def letter_l() -> np.ndarray:
    """An upright 'L': stem on the left, foot at the bottom pointing right (no symmetry to hide a flip)."""
    glyph = np.zeros((28, 28), dtype=np.uint8)
    glyph[4:24, 6:10] = 255
    glyph[20:24, 6:22] = 255
    return glyph


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def emnist_files(split: str, train: bool, upright: np.ndarray, labels: np.ndarray) -> dict[str, bytes]:
    """The images and labels files of one part of a split, as EMNIST stores them (images transposed)."""
    prefix = f"emnist-{split}-{'train' if train else 'test'}"
    return {
        f"{prefix}-images-idx3-ubyte": idx_bytes(upright.transpose(0, 2, 1)),
        f"{prefix}-labels-idx1-ubyte": idx_bytes(labels),
    }


def fabricate(split: str, per_class: int, seed: int, file_labels_start: int = 0):
    """`per_class` images of every class of `split`; the first one is an upright 'L'."""
    classes = len(SPLIT_CLASSES[split])
    labels = np.repeat(np.arange(classes), per_class) + file_labels_start
    images = np.random.default_rng(seed).integers(0, 256, (len(labels), 28, 28), dtype=np.uint8)
    images[0] = letter_l()
    return images, labels


def write_split(root: Path, split: str, compressed: bool = True, **kwargs) -> dict[bool, tuple]:
    raw = root / "EMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    parts = {True: fabricate(split, TRAIN_PER_CLASS, 0, **kwargs), False: fabricate(split, 1, 1, **kwargs)}
    for train, (images, labels) in parts.items():
        for name, data in emnist_files(split, train, images, labels).items():
            if compressed:
                with gzip.open(raw / f"{name}.gz", "wb") as handle:
                    handle.write(data)
            else:
                (raw / name).write_bytes(data)
    return parts


def module(root: Path, **kwargs) -> EMNISTDataModule:
    settings = {"batch_size": 8, "image_shape": [1, 28, 28], "sample_grid": 7, "download": False, **kwargs}
    return EMNISTDataModule(root=str(root), **settings)


@pytest.fixture(scope="module")
def balanced(tmp_path_factory) -> tuple[Path, dict[bool, tuple]]:
    """A data folder holding a fabricated EMNIST balanced as the official .gz files."""
    root = tmp_path_factory.mktemp("data")
    return root, write_split(root, "balanced")


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt by torchvision to reach the network fails at once, as it would offline."""

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(torchvision.datasets.utils, "_urlretrieve", refuse)
    monkeypatch.setattr(torchvision.datasets.utils, "_get_redirect_url", refuse)


def test_balanced_loads_offline_upright_and_unmirrored(balanced):
    root, parts = balanced
    dm = module(root)
    images, labels = dm.split(train=True)
    assert images.shape == (47 * TRAIN_PER_CLASS, 1, 28, 28) and images.dtype == torch.uint8
    assert torch.equal(labels, torch.from_numpy(parts[True][1]).long())
    glyph = images[0, 0]
    assert torch.equal(glyph, torch.from_numpy(letter_l()))
    assert glyph[:14, 14:].sum() == 0  # an upright L leaves its top-right quarter empty
    assert glyph[:, :14].sum() > glyph[:, 14:].sum()  # and its stem is on the left
    test_images, test_labels = dm.split(train=False)
    assert len(test_images) == 47 and sorted(test_labels.tolist()) == list(range(47))


def test_class_names_follow_the_official_mapping(balanced):
    dm = module(balanced[0])
    assert dm.class_names == tuple(chr(code) for code in BALANCED_MAPPING)
    assert dm.num_classes == 47


@pytest.mark.parametrize(
    ("split", "count"), [("byclass", 62), ("bymerge", 47), ("balanced", 47), ("letters", 26), ("digits", 10)]
)
def test_every_split_has_its_class_count(tmp_path, split, count):
    assert module(tmp_path, split=split).num_classes == count


def test_plain_files_as_torchvision_unpacks_them(tmp_path):
    write_split(tmp_path, "digits", compressed=False)
    images, labels = module(tmp_path, split="digits").split(train=True)
    assert torch.equal(images[0, 0], torch.from_numpy(letter_l()))
    assert torch.bincount(labels).tolist() == [TRAIN_PER_CLASS] * 10


def test_letters_labels_start_at_zero_with_both_cases_in_the_name(tmp_path):
    write_split(tmp_path, "letters", file_labels_start=1)  # the official files number letters 1-26
    dm = module(tmp_path, split="letters")
    _, labels = dm.split(train=True)
    assert labels.min() == 0 and labels.max() == 25
    assert dm.class_names[0] == "Aa" and dm.class_names[25] == "Zz"


def test_classes_and_per_class_through_the_real_config(balanced, compose):
    root, _ = balanced
    cfg = compose(
        [
            "dataset=emnist",
            f"paths.data_dir={root}",
            "dataset.download=false",
            "dataset.classes=[A,a]",
            "dataset.per_class=2",
        ]
    )
    dm = instantiate(cfg.dataset)
    assert isinstance(dm, EMNISTDataModule) and dm.sample_grid == 7
    _, labels = dm.split(train=True)
    a_upper, a_lower = dm.class_names.index("A"), dm.class_names.index("a")
    assert sorted(labels.tolist()) == [a_upper, a_upper, a_lower, a_lower]
    assert sorted(dm.split(train=False)[1].tolist()) == [a_upper, a_lower]


def test_paper_emnist_experiment(compose):
    cfg = compose(["experiment=paper_emnist"])
    assert cfg.dataset._target_ == "handwriting_gan.data.emnist.EMNISTDataModule"
    assert cfg.dataset.split == "balanced" and cfg.dataset.batch_size == 128
    assert list(cfg.model.generator.hidden) == [256, 512, 1024, 1024]
    assert cfg.trainer.max_epochs == 100 and cfg.name == "paper_emnist"


# -- the mapping file ----------------------------------------------------------------------------
def write_mapping(root: Path, split: str, lines: list[str]) -> Path:
    path = root / "EMNIST" / "raw" / f"emnist-{split}-mapping.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def official_lines(split: str) -> list[str]:
    """emnist-<split>-mapping.txt as published: `label code` per line (`label upper lower` for letters)."""
    if split == "letters":
        return [
            f"{label + 1} {ord(name[0])} {ord(name[1])}" for label, name in enumerate(SPLIT_CLASSES[split])
        ]
    return [f"{label} {ord(name)}" for label, name in enumerate(SPLIT_CLASSES[split])]


def test_the_official_mapping_file_agrees_with_the_class_names(tmp_path):
    write_split(tmp_path, "balanced")
    mapping = write_mapping(tmp_path, "balanced", official_lines("balanced"))
    assert [int(line.split()[1]) for line in mapping.read_text().splitlines()] == BALANCED_MAPPING
    images, _ = module(tmp_path).split(train=True)
    assert len(images) == 47 * TRAIN_PER_CLASS
    write_split(tmp_path, "letters", file_labels_start=1)
    write_mapping(tmp_path, "letters", official_lines("letters"))  # two codes a label, numbered from 1
    assert len(module(tmp_path, split="letters").split(train=True)[0]) == 26 * TRAIN_PER_CLASS


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        # Two classes swapped: every image of 'B' would be shown and exported as 'C'.
        (
            lambda lines: (
                lines[:11] + [lines[12].replace("12", "11"), lines[11].replace("11", "12")] + lines[13:]
            ),
            "maps label 11 to 'C', but label 11 of EMNIST balanced is 'B' (2 of 47 labels differ)",
        ),
        (lambda lines: lines[:-1], "maps label 46 to nothing, but label 46 of EMNIST balanced is 't'"),
        (lambda lines: [*lines, "47 117"], "lists labels [47] that EMNIST balanced does not have"),
        # byclass's mapping (62 classes, every lowercase letter) put beside balanced's files.
        (
            lambda lines: official_lines("byclass"),
            "maps label 38 to 'c', but label 38 of EMNIST balanced is 'd'",
        ),
        (lambda lines: [*lines[:5], "5 five", *lines[6:]], "line 6 ('5 five') is not 'label code [code]'"),
    ],
    ids=["swapped", "short", "extra", "another split", "malformed"],
)
def test_a_mapping_file_that_disagrees_is_refused(tmp_path, lines, expected):
    write_split(tmp_path, "balanced")
    mapping = write_mapping(tmp_path, "balanced", lines(official_lines("balanced")))
    with pytest.raises(DataError) as error:
        module(tmp_path).split(train=True)
    message = str(error.value)
    assert message.startswith(str(mapping)) and expected in message, message
    assert "official" in message and "\n" not in message


def test_unknown_split_names_the_valid_ones(tmp_path):
    with pytest.raises(ConfigError, match="dataset.split='bylower'.*balanced, letters"):
        module(tmp_path, split="bylower")


def test_missing_files_without_download_name_the_url_folder_and_files(tmp_path):
    with pytest.raises(DataError) as error:
        module(tmp_path).split(train=True)
    message = str(error.value)
    assert str(tmp_path / "EMNIST" / "raw") in message
    assert EMNIST.url in message and "dataset.download=false" in message
    for part in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "test-images-idx3-ubyte"):
        assert f"emnist-balanced-{part}" in message
    assert not any(tmp_path.iterdir())  # nothing written


def test_failed_download_is_one_clear_data_error(tmp_path, no_network):
    with pytest.raises(DataError) as error:
        module(tmp_path, download=True).split(train=True)
    message = str(error.value)
    assert "Download failed" in message and "network is unreachable" in message
    assert EMNIST.url in message and "emnist-balanced-test-labels-idx1-ubyte" in message


def test_official_archive_placed_by_hand_is_unpacked_without_network(tmp_path, no_network, monkeypatch):
    raw = tmp_path / "EMNIST" / "raw"
    raw.mkdir(parents=True)
    archive = raw / "gzip.zip"
    with zipfile.ZipFile(archive, "w") as packed:
        for train, (images, labels) in {
            True: fabricate("mnist", 2, 0),
            False: fabricate("mnist", 1, 1),
        }.items():
            for name, data in emnist_files("mnist", train, images, labels).items():
                packed.writestr(f"gzip/{name}.gz", gzip.compress(data))
    monkeypatch.setattr(EMNIST, "md5", hashlib.md5(archive.read_bytes()).hexdigest())
    images, labels = module(tmp_path, split="mnist", download=True).split(train=True)
    assert torch.equal(images[0, 0], torch.from_numpy(letter_l()))
    assert len(labels) == 20


def test_truncated_file_is_a_data_error(tmp_path):
    write_split(tmp_path, "digits", compressed=False)
    images_file = tmp_path / "EMNIST" / "raw" / "emnist-digits-train-images-idx3-ubyte"
    images_file.write_bytes(images_file.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated"):
        module(tmp_path, split="digits").split(train=True)


def test_labels_of_another_split_are_refused(tmp_path):
    write_split(tmp_path, "byclass")
    raw = tmp_path / "EMNIST" / "raw"
    for path in raw.iterdir():  # byclass files (62 classes) renamed as if they were digits (10)
        path.rename(raw / path.name.replace("byclass", "digits"))
    with pytest.raises(DataError, match="belongs to another split"):
        module(tmp_path, split="digits").split(train=True)


def test_tiny_training_run_on_emnist_draws_a_7x7_grid(balanced, cli, tmp_path):
    root, _ = balanced
    run_dir = tmp_path / "run"
    result = cli(
        [
            "dataset=emnist",
            f"paths.data_dir={root}",
            f"paths.cache_dir={tmp_path / 'cache'}",
            "dataset.download=false",
            "dataset.batch_size=16",
            "trainer.max_epochs=1",
            "++trainer.limit_train_batches=2",
            "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false",
            f"hydra.run.dir={run_dir}",
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    grid = Image.open(run_dir / "figures" / "samples_epoch_001.png")
    assert grid.size == (4 * (7 * 30 + 2),) * 2  # 7x7 images of 28 px, 2 px padding, enlarged 4 times


# -- the real EMNIST balanced subset ------------------------------------------------------------
def orientations(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """uint8 images (N, 1, H, W) in all eight orientations of a square."""
    return {
        "upright": images,
        "transposed (as stored)": images.transpose(2, 3),
        "mirrored": images.flip(3),
        "upside down": images.flip(2),
        "rotated 180": images.flip(2, 3),
        "rotated 90": torch.rot90(images, 1, (2, 3)),
        "rotated 270": torch.rot90(images, 3, (2, 3)),
        "transposed on the other diagonal": images.transpose(2, 3).flip(2, 3),
    }


@pytest.fixture(scope="module")
def subset(emnist_subset_root) -> EMNISTDataModule:
    return module(emnist_subset_root)


def test_the_real_subset_loads_read_only_with_every_class(subset, emnist_subset_root):
    before = sorted((p, p.stat().st_mtime_ns) for p in emnist_subset_root.rglob("*"))
    for train in (True, False):
        images, labels = subset.split(train=train)
        assert images.shape == (2000, 1, 28, 28) and images.dtype == torch.uint8
        assert labels.min() == 0 and labels.max() == 46
        counts = torch.bincount(labels, minlength=47)
        assert counts.min() >= 28 and counts.max() <= 55  # all 47 classes, as the data's README says
    assert sorted((p, p.stat().st_mtime_ns) for p in emnist_subset_root.rglob("*")) == before


def test_the_real_mapping_file_names_the_classes_in_label_order(subset):
    assert subset.mapping_file.is_file()
    lines = [line.split() for line in subset.mapping_file.read_text().splitlines()]
    assert [int(label) for label, _ in lines] == list(range(47))
    assert tuple(chr(int(code)) for _, code in lines) == subset.class_names
    assert [int(code) for _, code in lines] == BALANCED_MAPPING


def test_the_real_digits_read_upright_and_unmirrored_as_mnist(subset, mnist_reader):
    """What fabricated files cannot show: an MNIST classifier reads the subset's digits as the loader
    turns them, and none of the seven other orientations of a square comes near."""
    images, labels = (
        torch.cat(parts) for parts in zip(subset.split(train=True), subset.split(train=False), strict=True)
    )
    digits = labels < 10
    assert digits.sum() > 800  # about 440 of each split
    read = {
        name: accuracy(mnist_reader, turned, labels[digits])
        for name, turned in orientations(images[digits]).items()
    }
    upright = read.pop("upright")
    assert upright >= 0.8, read
    assert read["transposed (as stored)"] <= 0.3, read
    assert max(read.values()) <= upright - 0.3, read


def test_grids_show_the_real_classes_in_label_order_with_their_names(subset, monkeypatch, tmp_path):
    """The real-samples sheet of a run takes one image of each class in label order, captioned with the
    character the mapping file gives that label; a conditional grid's row r is label r, named the same."""
    drawn = {}

    def spy(images, captions, nrow, scale=2):
        drawn.update(images=images, captions=captions, nrow=nrow)
        return Image.new("L", (1, 1))

    monkeypatch.setattr(samples, "captioned_grid", spy)
    trainer = type("Trainer", (), {"datamodule": subset})()
    SampleGrid(str(tmp_path)).on_train_start(trainer, None)
    mapping = [chr(int(line.split()[1])) for line in subset.mapping_file.read_text().splitlines()]
    assert drawn["nrow"] == 7 and drawn["captions"] == mapping + mapping[:2]  # 7 x 7 = 47 classes + 2
    images, labels = subset.split(train=True)
    first_of_class = [int(torch.nonzero(labels == label)[0]) for label in range(47)]
    assert torch.equal(drawn["images"][:47], images[first_of_class])
