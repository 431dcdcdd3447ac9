"""Chars74K from a fabricated EnglishHnd.tgz (full-size RGB scans in the archive's own layout): the MNIST
preprocessing, the held-out split, the cache, and every error path."""

import hashlib
import io
import tarfile
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from PIL import Image, ImageDraw

from handwriting_gan.data import chars74k
from handwriting_gan.data.chars74k import Chars74KDataModule
from handwriting_gan.errors import ConfigError, DataError

SAMPLES = 4  # per class; the real archive has 55
CLASSES = {1: "0", 11: "A", 37: "a"}  # SampleNNN folder -> class name


def scan(sample: int, folder: int) -> Image.Image:
    """A 1200x900 RGB scan of a dark 'L' on white, twice as tall as wide, placed off-centre.

    Stroke width differs for every sample and class, so every preprocessed image is different.
    """
    image = Image.new("RGB", (1200, 900), "white")
    draw = ImageDraw.Draw(image)
    left, top, stroke = 150 + 30 * sample, 100 + folder, 20 + 8 * sample + folder // 4
    draw.rectangle([left, top, left + stroke, top + 600], fill=(25, 20, 30))  # the stem
    draw.rectangle([left, top + 600 - stroke, left + 300, top + 600], fill=(25, 20, 30))  # the foot
    return image


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def tgz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def archive_bytes() -> bytes:
    """EnglishHnd.tgz in miniature: English/Hnd/Img/SampleCCC/imgCCC-NNN.png, plus a non-image member."""
    members = {
        f"English/Hnd/Img/Sample{folder:03d}/img{folder:03d}-{sample:03d}.png": png(scan(sample, folder))
        for folder in CLASSES
        for sample in range(1, SAMPLES + 1)
    }
    members["English/Hnd/Trj/Sample001/img001-001.txt"] = b"stroke trajectory"
    return tgz(members)


@pytest.fixture
def data_dir(tmp_path, archive_bytes, monkeypatch) -> Path:
    """A data folder with the fabricated archive in place, accepted as the official one."""
    folder = tmp_path / "data" / "Chars74K"
    folder.mkdir(parents=True)
    (folder / "EnglishHnd.tgz").write_bytes(archive_bytes)
    monkeypatch.setattr(Chars74KDataModule, "md5", hashlib.md5(archive_bytes).hexdigest())
    return tmp_path / "data"


def module(data_dir: Path, cache_dir: Path, **kwargs) -> Chars74KDataModule:
    settings = {"batch_size": 4, "image_shape": [1, 28, 28], "sample_grid": 2, "test_per_class": 1, **kwargs}
    return Chars74KDataModule(root=str(data_dir), cache_dir=str(cache_dir), **settings)


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_scans_become_mnist_style_characters(data_dir, tmp_path):
    images, labels, _ = module(data_dir, tmp_path / "cache").preprocessed()
    assert images.shape == (len(CLASSES) * SAMPLES, 28, 28) and images.dtype == torch.uint8
    assert labels.tolist() == [0] * SAMPLES + [10] * SAMPLES + [36] * SAMPLES
    grid = torch.arange(28, dtype=torch.float64)
    for image in images.double():
        rows, cols = torch.nonzero(image, as_tuple=True)
        height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert height == 20 and width in (10, 11)  # fits in 20x20, aspect ratio 2:1 kept
        mass = image.sum()
        centre = (grid @ image.sum(1) / mass, grid @ image.sum(0) / mass)
        assert centre == (pytest.approx(13.5, abs=1.0), pytest.approx(13.5, abs=1.0))
        assert image.max() == 255 and image[0].sum() == 0 and image[:, -1].sum() == 0  # white on black
        # Upright and unmirrored: the stem is on the left, the foot at the bottom, top right empty.
        top, left = rows.min().item(), cols.min().item()
        assert image[top : top + 10, left + 5 :].sum() == 0
        assert image[top + 19, left : left + 10].min() > 0


def test_last_samples_of_each_class_are_the_test_split(data_dir, tmp_path):
    dm = module(data_dir, tmp_path / "cache", test_per_class=1)
    everything, all_labels, samples = dm.preprocessed()
    train, train_labels = dm.split(train=True)
    test, test_labels = dm.split(train=False)
    assert len(train) == 3 * (SAMPLES - 1) and len(test) == 3
    assert torch.equal(test[:, 0], everything[samples == SAMPLES])  # img...-004 of every class
    assert torch.equal(train[:, 0], everything[samples < SAMPLES])
    assert torch.bincount(train_labels, minlength=62)[[0, 10, 36]].tolist() == [SAMPLES - 1] * 3
    assert sorted(test_labels.tolist()) == [0, 10, 36]
    again = module(data_dir, tmp_path / "cache", test_per_class=1).split(train=False)[0]
    assert torch.equal(again, test)  # the same split on every load

    two = module(data_dir, tmp_path / "cache", test_per_class=2)
    assert len(two.split(train=True)[0]) == len(two.split(train=False)[0]) == 6


def test_test_split_cannot_take_a_whole_class(data_dir, tmp_path):
    with pytest.raises(ConfigError, match=f"dataset.test_per_class={SAMPLES}.*use at most {SAMPLES - 1}"):
        module(data_dir, tmp_path / "cache", test_per_class=SAMPLES).split(train=True)


def test_cache_is_written_once_outside_the_data_folder_and_read_back(data_dir, tmp_path):
    cache = tmp_path / "cache"
    data_before = files_under(data_dir)
    first = module(data_dir, cache).split(train=True)[0]
    assert files_under(data_dir) == data_before  # the data folder may be read-only
    (written,) = files_under(cache)
    assert written.parent == cache / "chars74k" and Chars74KDataModule.md5 in written.name

    (data_dir / "Chars74K" / "EnglishHnd.tgz").unlink()  # only the cache can serve the next load
    assert torch.equal(module(data_dir, cache).split(train=True)[0], first)


def test_cache_name_changes_with_the_preprocessing_settings(data_dir, tmp_path):
    cache = tmp_path / "cache"
    default = module(data_dir, cache)
    smaller = module(data_dir, cache, fit_size=16)
    assert default.cache_path() != smaller.cache_path()
    assert default.cache_path() != module(data_dir, cache, ink_threshold=60).cache_path()
    rows = torch.nonzero(smaller.split(train=True)[0][0, 0], as_tuple=True)[0]
    assert rows.max() - rows.min() + 1 == 16
    assert not torch.equal(default.split(train=True)[0], smaller.split(train=True)[0])
    assert len(files_under(cache)) == 2


def test_classes_and_few_shot_through_the_real_config(data_dir, tmp_path, compose):
    cfg = compose(
        [
            "dataset=chars74k",
            f"paths.data_dir={data_dir}",
            f"paths.cache_dir={tmp_path / 'cache'}",
            "dataset.test_per_class=1",
            "dataset.classes=[A,a]",
            "dataset.per_class=2",
            "dataset.batch_size=4",
        ]
    )
    dm = instantiate(cfg.dataset)
    dm.setup("fit")
    _, labels = dm.split(train=True)
    assert sorted(labels.tolist()) == [10, 10, 36, 36]
    assert sorted(dm.split(train=False)[1].tolist()) == [10, 36]
    assert dm.class_names[10] == "A" and dm.num_classes == 62


def test_paper_chars74k_experiment(compose):
    cfg = compose(["experiment=paper_chars74k"])
    assert cfg.dataset._target_ == "handwriting_gan.data.chars74k.Chars74KDataModule"
    assert cfg.dataset.batch_size == 64 and cfg.dataset.test_per_class == 10
    assert list(cfg.model.generator.hidden) == [256, 512, 1024]
    assert cfg.trainer.max_epochs == 100 and cfg.name == "paper_chars74k"


def test_truncated_archive_is_a_checksum_error_and_leaves_no_cache(data_dir, tmp_path, archive_bytes):
    (data_dir / "Chars74K" / "EnglishHnd.tgz").write_bytes(archive_bytes[: len(archive_bytes) // 2])
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as error:
        module(data_dir, cache).split(train=True)
    assert "Checksum mismatch" in str(error.value) and Chars74KDataModule.md5 in str(error.value)
    assert files_under(cache) == []  # neither a cache nor a temporary file


def test_missing_archive_without_download_names_url_folder_and_file(tmp_path):
    with pytest.raises(DataError) as error:
        module(tmp_path / "data", tmp_path / "cache", download=False).split(train=True)
    message = str(error.value)
    assert Chars74KDataModule.url in message and "dataset.download=false" in message
    assert str(tmp_path / "data" / "Chars74K" / "EnglishHnd.tgz") in message
    assert files_under(tmp_path) == []


def test_failed_download_is_one_clear_data_error_and_leaves_no_partial_file(tmp_path, monkeypatch):
    def unreachable(url, root, filename=None, md5=None):
        (Path(root) / filename).write_bytes(b"half an archive")
        raise OSError("network is unreachable")

    monkeypatch.setattr(chars74k, "download_url", unreachable)
    with pytest.raises(DataError) as error:
        module(tmp_path / "data", tmp_path / "cache").split(train=True)
    message = str(error.value)
    assert "Download failed (network is unreachable)" in message and Chars74KDataModule.url in message
    assert "EnglishHnd.tgz" in message
    assert files_under(tmp_path) == []


def test_download_lands_in_the_data_folder_and_is_checked(tmp_path, monkeypatch, archive_bytes):
    fetched = []

    def fetch(url, root, filename=None, md5=None):
        fetched.append(url)
        (Path(root) / filename).write_bytes(archive_bytes)

    monkeypatch.setattr(chars74k, "download_url", fetch)
    monkeypatch.setattr(Chars74KDataModule, "md5", hashlib.md5(archive_bytes).hexdigest())
    images, _ = module(tmp_path / "data", tmp_path / "cache").split(train=True)
    assert fetched == [Chars74KDataModule.url] and len(images) == 3 * (SAMPLES - 1)
    assert (tmp_path / "data" / "Chars74K" / "EnglishHnd.tgz").read_bytes() == archive_bytes


def test_blank_scan_is_named(tmp_path, monkeypatch):
    blank = tgz({"English/Hnd/Img/Sample001/img001-001.png": png(Image.new("RGB", (1200, 900), "white"))})
    (tmp_path / "data" / "Chars74K").mkdir(parents=True)
    (tmp_path / "data" / "Chars74K" / "EnglishHnd.tgz").write_bytes(blank)
    monkeypatch.setattr(Chars74KDataModule, "md5", hashlib.md5(blank).hexdigest())
    with pytest.raises(
        DataError, match="EnglishHnd.tgz: English/Hnd/Img/Sample001/img001-001.png has no ink"
    ):
        module(tmp_path / "data", tmp_path / "cache").split(train=True)
    assert files_under(tmp_path / "cache") == []


def test_faint_strokes_are_found_by_otsu_unless_a_fixed_threshold_is_set(tmp_path, monkeypatch):
    # Pencil-grey strokes only about 80 of 255 levels dark: below the old fixed threshold of 128.
    faint = {
        f"English/Hnd/Img/Sample001/img001-{sample:03d}.png": png(
            Image.eval(scan(sample, 1), lambda v: 170 + v // 3)
        )
        for sample in (1, 2)
    }
    archive = tgz(faint)
    (tmp_path / "data" / "Chars74K").mkdir(parents=True)
    (tmp_path / "data" / "Chars74K" / "EnglishHnd.tgz").write_bytes(archive)
    monkeypatch.setattr(Chars74KDataModule, "md5", hashlib.md5(archive).hexdigest())
    images, _, _ = module(tmp_path / "data", tmp_path / "cache").preprocessed()
    for image in images:
        rows, _ = torch.nonzero(image, as_tuple=True)
        assert rows.max() - rows.min() + 1 == 20 and image.max() == 255
        assert image[0].sum() == image[:, 0].sum() == 0 and (image == 0).float().mean() > 0.5
    with pytest.raises(
        DataError, match="img001-001.png has no ink: no pixel is as strong as dataset.ink_threshold=128"
    ):
        module(tmp_path / "data", tmp_path / "cache2", ink_threshold=128).preprocessed()
    assert files_under(tmp_path / "cache2") == []


@pytest.mark.parametrize(
    ("setting", "key"),
    [
        ({"image_shape": [3, 28, 28]}, "image_shape"),
        ({"fit_size": 30}, "fit_size"),
        ({"ink_threshold": 0}, "ink_threshold"),
    ],
)
def test_impossible_settings_are_config_errors(tmp_path, setting, key):
    with pytest.raises(ConfigError, match=f"dataset.{key}="):
        module(tmp_path, tmp_path, **setting)
