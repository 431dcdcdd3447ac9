"""Chars74K from a fabricated EnglishHnd.tgz (full-size RGB scans in the archive's own layout) and from
the tree it unpacks to: the MNIST preprocessing, the held-out split, the cache and its report, scans that
cannot be characters, the tree's check, every error path, and the real EnglishHnd when ../shared/data has
it."""

import hashlib
import io
import json
import logging
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image, ImageDraw

from handwriting_gan.data import chars74k, conversion
from handwriting_gan.data.chars74k import Chars74KDataModule
from handwriting_gan.data.conversion import report_path
from handwriting_gan.data.preprocess import Preprocessing
from handwriting_gan.errors import ConfigError, DataError
from handwriting_gan.metrics.classifier import accuracy

SAMPLES = 4  # per class; the real archive has 55
CLASSES = {1: "0", 11: "A", 37: "a"}  # SampleNNN folder -> class name


def scan(sample: int, folder: int, shrink: int = 1) -> Image.Image:
    """A 1200x900 RGB scan (`shrink` times smaller) of a dark 'L' on white, twice as tall as wide, placed
    off-centre.

    Stroke width differs for every sample and class, so every preprocessed image is different.
    """
    image = Image.new("RGB", (1200 // shrink, 900 // shrink), "white")
    draw = ImageDraw.Draw(image)
    left, top, stroke = 150 + 30 * sample, 100 + folder, 20 + 8 * sample + folder // 4
    stem = [left, top, left + stroke, top + 600]
    foot = [left, top + 600 - stroke, left + 300, top + 600]
    for box in (stem, foot):
        draw.rectangle([v // shrink for v in box], fill=(25, 20, 30))
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


def snapshot(root: Path) -> list[tuple]:
    """Every entry under `root` with its size and modification time."""
    return sorted((str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*"))


def refuse_to_convert(monkeypatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("a scan was converted although the cache holds it")

    monkeypatch.setattr(Preprocessing, "convert", fail)


def write_archive(data_dir: Path, members: dict[str, bytes], monkeypatch) -> Path:
    """`members` as <data_dir>/Chars74K/EnglishHnd.tgz, accepted as the official archive."""
    archive = tgz(members)
    (data_dir / "Chars74K").mkdir(parents=True, exist_ok=True)
    (data_dir / "Chars74K" / "EnglishHnd.tgz").write_bytes(archive)
    monkeypatch.setattr(Chars74KDataModule, "md5", hashlib.md5(archive).hexdigest())
    return data_dir


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


def test_a_long_conversion_says_how_far_it_is(data_dir, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(conversion, "PROGRESS_SECONDS", 0.0)  # every scan counts as a long wait
    with caplog.at_level(logging.INFO, logger="handwriting_gan.data.conversion"):
        module(data_dir, tmp_path / "cache").preprocessed()
    lines = [r.getMessage() for r in caplog.records if r.name == "handwriting_gan.data.conversion"]
    total = len(CLASSES) * SAMPLES
    assert lines[0].startswith(f"Chars74K: converted 1 of {total} images (8%), about ")
    assert lines[-1].startswith(f"Chars74K: converted {total} images in ") and len(lines) == total
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="handwriting_gan.data.conversion"):
        module(data_dir, tmp_path / "cache").preprocessed()  # from the cache: nothing to wait for
    assert not [r for r in caplog.records if r.name == "handwriting_gan.data.conversion"]


def test_test_split_cannot_take_a_whole_class(data_dir, tmp_path):
    with pytest.raises(ConfigError, match=f"dataset.test_per_class={SAMPLES}.*use at most {SAMPLES - 1}"):
        module(data_dir, tmp_path / "cache", test_per_class=SAMPLES).split(train=True)


def test_cache_and_report_are_written_once_outside_the_data_folder_and_read_back(
    data_dir, tmp_path, monkeypatch
):
    cache = tmp_path / "cache"
    data_before = snapshot(data_dir)
    first = module(data_dir, cache).split(train=True)[0]
    assert snapshot(data_dir) == data_before  # the data folder may be read-only
    written, report = files_under(cache)
    assert written.parent == cache / "chars74k" and written.name.startswith("EnglishHnd-")
    assert written.suffix == ".pt" and report == report_path(written)
    record = json.loads(report.read_text())
    assert record["images"] == record["usable"] == len(CLASSES) * SAMPLES and record["skipped_files"] == []
    assert record["per_class"]["A"] == {"usable": SAMPLES, "skipped": 0}
    assert record["source"] == str(data_dir / "Chars74K" / "EnglishHnd.tgz")

    refuse_to_convert(monkeypatch)  # the next load reads the cache, converting nothing
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
    assert len(files_under(cache)) == 4  # two caches, each with its report


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
    assert cfg.dataset.strict is False and cfg.dataset.ink_threshold == 128


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


def test_missing_archive_and_tree_without_download_names_url_and_both_places(tmp_path):
    with pytest.raises(DataError) as error:
        module(tmp_path / "data", tmp_path / "cache", download=False).split(train=True)
    message = str(error.value)
    assert Chars74KDataModule.url in message and "dataset.download=false" in message
    assert str(tmp_path / "data" / "Chars74K" / "EnglishHnd.tgz") in message
    assert str(tmp_path / "data" / "Chars74K" / "English" / "Hnd" / "Img") in message
    assert "exists" not in message
    assert files_under(tmp_path) == []


def test_a_tree_unpacked_one_folder_too_high_is_pointed_out(tmp_path):
    (tmp_path / "data" / "English" / "Hnd" / "Img" / "Sample001").mkdir(parents=True)
    with pytest.raises(DataError) as error:
        module(tmp_path / "data", tmp_path / "cache", download=False).split(train=True)
    assert f"{tmp_path / 'data' / 'English' / 'Hnd' / 'Img'} exists: move its English/ folder into" in str(
        error.value
    )


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


def test_scans_that_cannot_be_characters_are_left_out_counted_and_listed(tmp_path, monkeypatch, caplog):
    members = {f"English/Hnd/Img/Sample011/img011-{n:03d}.png": png(scan(n, 11)) for n in (1, 2, 3)}
    members["English/Hnd/Img/Sample011/img011-004.png"] = png(Image.new("RGB", (1200, 900), "white"))
    members["English/Hnd/Img/Sample011/img011-005.png"] = b"half a png"
    members["English/Hnd/Img/Sample001/img001-001.png"] = png(scan(1, 1))
    data = write_archive(tmp_path / "data", members, monkeypatch)
    with caplog.at_level(logging.WARNING):
        images, labels, samples = module(data, tmp_path / "cache").preprocessed()
    assert labels.tolist() == [0, 10, 10, 10] and samples.tolist() == [1, 1, 2, 3]
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert line.startswith("Skipped 2 of 6 images of ") and "\n" not in line
    assert "img011-004.png (has no ink" in line and "img011-005.png (cannot be read as an image" in line
    report = json.loads(report_path(module(data, tmp_path / "cache").cache_path()).read_text())
    assert [(entry["file"].split("/")[-1], entry["class"]) for entry in report["skipped_files"]] == [
        ("img011-004.png", "A"),
        ("img011-005.png", "A"),
    ]
    assert report["per_class"]["A"] == {"usable": 3, "skipped": 2}
    assert f"The full list: {report_path(module(data, tmp_path / 'cache').cache_path())}." in line

    with pytest.raises(DataError) as error:  # strict: the same scans stop the run, read from the cache
        module(data, tmp_path / "cache", strict=True).preprocessed()
    message = str(error.value)
    assert "2 of 6 images" in message and "dataset.strict=true refuses them" in message
    assert "img011-004.png (has no ink" in message and "dataset.strict=false" in message


def test_a_class_left_without_a_usable_scan_is_refused(tmp_path, monkeypatch):
    blank = png(Image.new("RGB", (1200, 900), "white"))
    members = {
        "English/Hnd/Img/Sample001/img001-001.png": blank,
        "English/Hnd/Img/Sample002/img002-001.png": blank,
    }
    members["English/Hnd/Img/Sample011/img011-001.png"] = png(scan(1, 11))
    data = write_archive(tmp_path / "data", members, monkeypatch)
    with pytest.raises(DataError) as error:
        module(data, tmp_path / "cache").split(train=True)
    message = str(error.value)
    assert message.startswith("Class '0' (Sample001) has no usable image: none of its 1 images")
    assert "EnglishHnd.tgz: English/Hnd/Img/Sample001/img001-001.png (has no ink" in message
    # A refused dataset leaves nothing behind: no cache, no report (the message names the files).
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.*"))


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
        DataError, match=r"img001-001.png \(has no ink: no pixel is as strong as dataset.ink_threshold=128"
    ):
        module(tmp_path / "data", tmp_path / "cache2", ink_threshold=128).preprocessed()


@pytest.mark.parametrize(
    ("setting", "key"),
    [
        ({"image_shape": [3, 28, 28]}, "image_shape"),
        ({"fit_size": 30}, "fit_size"),
        ({"ink_threshold": 0}, "ink_threshold"),
        ({"strict": "yes"}, "strict"),
    ],
)
def test_impossible_settings_are_config_errors(tmp_path, setting, key):
    with pytest.raises(ConfigError, match=f"dataset.{key}="):
        module(tmp_path, tmp_path, **setting)


# -- the unpacked tree ----------------------------------------------------------------------------
TREE_SAMPLES = 2  # per class in the fabricated trees; the real one has 55


def tree_files(samples: int) -> dict[str, bytes]:
    """Every scan of a complete EnglishHnd tree, relative to Img/: an 'L' at a quarter of the real size."""
    return {
        f"Sample{folder:03d}/img{folder:03d}-{sample:03d}.png": png(scan(sample, folder, shrink=4))
        for folder in range(1, 63)
        for sample in range(1, samples + 1)
    }


@pytest.fixture(scope="module")
def tree_scans() -> dict[str, bytes]:
    return tree_files(TREE_SAMPLES)


def write_tree(data_dir: Path, files: dict[str, bytes]) -> Path:
    """`files` unpacked as the archive unpacks: <data_dir>/Chars74K/English/Hnd/Img/..., with the
    archive's own file lists beside them."""
    img = data_dir / "Chars74K" / "English" / "Hnd" / "Img"
    for name, content in files.items():
        (img / name).parent.mkdir(parents=True, exist_ok=True)
        (img / name).write_bytes(content)
    (img / "all.txt").write_text("\n".join(files) + "\n")
    (img.parent / "all.txt").write_text("\n".join(f"Img/{name}" for name in files) + "\n")
    return data_dir


@pytest.fixture
def tree_dir(tmp_path, tree_scans, monkeypatch) -> Path:
    """A data folder holding only the unpacked tree, TREE_SAMPLES scans per class."""
    monkeypatch.setattr(Chars74KDataModule, "samples_per_class", TREE_SAMPLES)
    return write_tree(tmp_path / "data", tree_scans)


def test_the_unpacked_tree_loads_in_place_and_shares_the_archives_cache(
    tree_dir, tree_scans, tmp_path, monkeypatch
):
    before = snapshot(tree_dir)
    dm = module(tree_dir, tmp_path / "cache", test_per_class=1, download=False)
    images, labels, samples = dm.preprocessed()
    assert images.shape == (62 * TREE_SAMPLES, 28, 28)
    assert labels.tolist() == [label for label in range(62) for _ in range(TREE_SAMPLES)]
    assert samples.tolist() == [1, 2] * 62
    assert dm.scans().source == tree_dir / "Chars74K" / "English" / "Hnd" / "Img"
    assert snapshot(tree_dir) == before  # only read: nothing unpacked, cached or downloaded there
    assert len(dm.split(train=True)[0]) == len(dm.split(train=False)[0]) == 62

    # The archive of the very same scans is the same dataset: its load reads the tree's cache.
    members = {f"English/Hnd/Img/{name}": content for name, content in tree_scans.items()}
    packed = write_archive(tmp_path / "packed", members, monkeypatch)
    from_archive = module(packed, tmp_path / "cache", test_per_class=1)
    assert from_archive.cache_path() == dm.cache_path()
    refuse_to_convert(monkeypatch)
    assert torch.equal(from_archive.preprocessed()[0], images)


def test_the_cache_follows_the_scans_contents_not_their_dates(tree_dir, tmp_path):
    original = module(tree_dir, tmp_path / "cache").cache_path()
    copied = tmp_path / "copied"
    shutil.copytree(tree_dir, copied, copy_function=shutil.copyfile)  # new files, new modification times
    assert module(copied, tmp_path / "cache").cache_path() == original
    redrawn = copied / "Chars74K" / "English" / "Hnd" / "Img" / "Sample005" / "img005-002.png"
    redrawn.write_bytes(png(scan(7, 5, shrink=4)))
    assert module(copied, tmp_path / "cache").cache_path() != original


def test_junk_in_the_tree_is_left_out_unless_strict(tree_dir, tmp_path, caplog):
    # The junk the folder dataset used to refuse outright: a 1x2-pixel crop with no ink.
    crop = tree_dir / "Chars74K" / "English" / "Hnd" / "Img" / "Sample020" / "img020-002.png"
    Image.new("RGB", (1, 2), "white").save(crop)
    with caplog.at_level(logging.WARNING):
        _, labels, samples = module(tree_dir, tmp_path / "cache").preprocessed()
    assert len(labels) == 62 * TREE_SAMPLES - 1 and (labels == 19).sum() == 1
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"Skipped 1 of {62 * TREE_SAMPLES} images" in line and f"{crop} (is 1x2 pixels, too small" in line
    with pytest.raises(DataError, match=f"{crop} \\(is 1x2 pixels, too small to hold a character"):
        module(tree_dir, tmp_path / "cache", strict=True).preprocessed()


def test_a_tree_with_missing_or_extra_scans_names_them_before_reading_any(tmp_path, monkeypatch):
    # The real counts (62 x 55), as empty files: the check reads names, not images.
    expected = [f"Sample{c:03d}/img{c:03d}-{n:03d}.png" for c in range(1, 63) for n in range(1, 56)]
    data = write_tree(tmp_path / "data", dict.fromkeys(expected, b""))
    img = data / "Chars74K" / "English" / "Hnd" / "Img"
    (img / "Sample007" / "Thumbs.db").write_bytes(b"not a scan")  # files that are no image are ignored
    (img / "Sample007" / ".DS_Store").write_bytes(b"hidden")
    refuse_to_convert(monkeypatch)
    dm = module(data, tmp_path / "cache")
    assert len(dm.scans().names) == 3410  # complete: accepted

    (img / "Sample007" / "img007-012.png").unlink()
    (img / "Sample007" / "img007-056.png").write_bytes(b"")
    (img / "Sample002" / "img002-001 (1).png").write_bytes(b"")
    (img / "Sample063").mkdir()
    with pytest.raises(DataError) as error:
        module(data, tmp_path / "cache").split(train=True)
    message = str(error.value)
    assert message.startswith(f"{img} is not EnglishHnd as unpacked from EnglishHnd.tgz: 1 missing")
    assert "1 missing (Sample007/img007-012.png)" in message and "\n" not in message
    assert "3 extra (Sample002/img002-001 (1).png, Sample007/img007-056.png, Sample063/)" in message
    assert "3410 scans in all" in message and str(data / "Chars74K" / "EnglishHnd.tgz") in message
    assert files_under(tmp_path / "cache") == []


def test_a_missing_class_folder_is_named(tree_dir, tmp_path):
    shutil.rmtree(tree_dir / "Chars74K" / "English" / "Hnd" / "Img" / "Sample062")
    with pytest.raises(DataError, match=r"2 missing \(Sample062/img062-001.png, Sample062/img062-002.png\)"):
        module(tree_dir, tmp_path / "cache").split(train=True)


# -- the real EnglishHnd --------------------------------------------------------------------------
def digit_scans(dm: Chars74KDataModule, per_digit: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first and last `per_digit` // 2 scans of each digit class, converted as the module does."""
    scans = dm.scans()
    picked = [
        i
        for i, (label, sample) in enumerate(zip(scans.labels, scans.samples, strict=True))
        if label < 10 and (sample <= per_digit // 2 or sample > 55 - per_digit // 2)
    ]
    images = [dm.preprocessing.convert(io.BytesIO(scans.contents[i]), scans.names[i]) for i in picked]
    labels = torch.tensor([scans.labels[i] for i in picked])
    return torch.from_numpy(np.stack(images)).unsqueeze(1), labels


def test_the_real_tree_is_complete_and_its_digits_read_as_mnist(chars74k_root, tmp_path, mnist_reader):
    before = snapshot(chars74k_root / "Chars74K")
    dm = module(chars74k_root, tmp_path / "cache", download=False, ink_threshold=128)
    scans = dm.scans()
    assert scans.source == chars74k_root / "Chars74K" / "English" / "Hnd" / "Img"
    assert len(scans.names) == 3410 and torch.bincount(torch.tensor(scans.labels)).tolist() == [55] * 62
    assert scans.names[0] == "Sample001/img001-001.png" and scans.names[-1] == "Sample062/img062-055.png"
    images, labels = digit_scans(dm, per_digit=4)
    assert len(images) == 40
    assert images[:, :, [0, -1], :].max() == 0 and images[:, :, :, [0, -1]].max() == 0  # black paper
    assert (images.flatten(1).max(1).values == 255).all()  # white ink
    upright, transposed = (
        accuracy(mnist_reader, images, labels),
        accuracy(mnist_reader, images.transpose(2, 3), labels),
    )
    assert upright >= 0.85 and transposed <= 0.4, (upright, transposed)
    assert snapshot(chars74k_root / "Chars74K") == before and files_under(tmp_path / "cache") == []


@pytest.mark.slow
def test_the_whole_real_chars74k_is_preprocessed_once_and_its_digits_read_as_mnist(
    chars74k_root, compose, tmp_path, mnist_reader, monkeypatch
):
    cfg = compose(["dataset=chars74k", f"paths.data_dir={chars74k_root}", f"paths.cache_dir={tmp_path}"])
    dm = instantiate(cfg.dataset)
    images, labels, _ = dm.preprocessed()
    report = json.loads(report_path(dm.cache_path()).read_text())
    assert report["images"] == 3410 and report["usable"] == len(images) >= 3400
    train, test = dm.split(train=True)[1], dm.split(train=False)[1]
    assert torch.bincount(test, minlength=62).tolist() == [10] * 62 and len(train) == len(images) - 620
    digits = labels < 10
    digit_images = images[digits].unsqueeze(1)
    assert accuracy(mnist_reader, digit_images, labels[digits]) >= 0.9
    assert accuracy(mnist_reader, digit_images.transpose(2, 3), labels[digits]) <= 0.4
    refuse_to_convert(monkeypatch)
    assert torch.equal(instantiate(cfg.dataset).preprocessed()[0], images)
