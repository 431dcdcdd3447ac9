"""`dataset=folder` on small folders drawn here with Pillow: every image mode and format, both ink
polarities, grey paper and faint pencil, tiny and large images, the held-out split, the cache and its
report, junk that cannot be a character, every bad input, and the real Omniglot Latin alphabet when
../shared/data has it."""

import json
import logging
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image, ImageDraw, ImageOps

from handwriting_gan.data import conversion
from handwriting_gan.data.conversion import convert_characters, report_path
from handwriting_gan.data.folder import FolderDataModule
from handwriting_gan.data.preprocess import Preprocessing
from handwriting_gan.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[2]
OMNIGLOT = Path(os.environ.get("HWGAN_SHARED_DATA", REPO.parent / "shared" / "data")) / "omniglot"
# The share of pixels brighter than half (> 127) that passes for MNIST-like: MNIST's training set has
# 13.2% (and 19.1% not black); thinner pens give less, as Omniglot's 9.9% does.
MNIST_LIT = (0.05, 0.30)


# -- drawing -------------------------------------------------------------------------------------
def draw(shape: str, size=(60, 80), ink=20, paper=245, stroke=None) -> Image.Image:
    """A grey ("L") character: `shape` "L" (twice as tall as wide) or "O", off-centre on the page."""
    width, height = size
    image = Image.new("L", size, paper)
    pen = ImageDraw.Draw(image)
    stroke = stroke or max(2, height // 12)
    left, top = 0.3 * width, 0.15 * height
    right, bottom = left + 0.35 * height, 0.85 * height
    if shape == "L":
        pen.rectangle([left, top, left + stroke, bottom], fill=ink)
        pen.rectangle([left, bottom - stroke, right, bottom], fill=ink)
    else:
        pen.ellipse([left, top, right, bottom], outline=ink, width=stroke)
    return image


def in_mode(grey: Image.Image, mode: str) -> Image.Image:
    """`grey` (dark ink on light paper) as an image of `mode`, the way such files come."""
    if mode == "L":
        return grey
    if mode == "RGB":  # blue ballpoint on cream paper
        return ImageOps.colorize(grey, black=(20, 40, 160), white=(250, 246, 235))
    if mode == "RGBA":  # black strokes on a transparent layer whose hidden colour is black too
        alpha = ImageOps.autocontrast(ImageOps.invert(grey))
        black = Image.new("L", grey.size, 0)
        return Image.merge("RGBA", (black, black, black, alpha))
    if mode == "1":
        return grey.convert("1", dither=Image.Dither.NONE)
    if mode.startswith("P"):  # "P" or "P transparent": a 16-colour palette, maybe with see-through paper
        colour = ImageOps.colorize(grey, black=(90, 20, 20), white=(255, 255, 255))
        indexed = colour.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
        if mode == "P transparent":
            indexed.info["transparency"] = indexed.getpixel((0, 0))  # the paper's palette entry
        return indexed
    if mode == "I;16":
        return Image.fromarray(np.asarray(grey, dtype=np.uint16) * 257)
    raise AssertionError(mode)


def save(image: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def make_folder(root: Path, counts: dict[str, int], **draw_kwargs) -> Path:
    """One sub-folder per class; class "L..." draws an L, any other an O; every image slightly different."""
    for name, count in counts.items():
        for index in range(count):
            size, stroke = (60, 80 + 3 * index), 3 + index % 8
            glyph = draw("L" if name.startswith("L") else "O", size, stroke=stroke, **draw_kwargs)
            save(glyph, root / name / f"{index:03d}.png")
    return root


def module(path: Path, cache: Path, **kwargs) -> FolderDataModule:
    settings = {"batch_size": 2, "sample_grid": 2, **kwargs}
    return FolderDataModule(path=str(path), cache_dir=str(cache), **settings)


def converted(path: Path, cache: Path, **kwargs) -> np.ndarray:
    return module(path, cache, **kwargs).converted()[0].numpy()


def snapshot(root: Path) -> list[tuple]:
    """Every entry under `root` with its size and modification time."""
    return sorted((str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*"))


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def lit(images: np.ndarray) -> float:
    return float((images > 127).mean())


def assert_mnist_like(image: np.ndarray, tall: bool = True) -> None:
    """28x28 uint8, white ink on an exactly black background, longer side 20, centred by mass."""
    assert image.shape == (28, 28) and image.dtype == np.uint8
    assert image.max() == 255
    assert image[0].sum() == image[-1].sum() == image[:, 0].sum() == image[:, -1].sum() == 0
    assert (image == 0).mean() > 0.5  # a black background, not a grey box
    rows, cols = np.nonzero(image)
    if tall:
        assert rows.max() - rows.min() + 1 == 20 and 8 <= cols.max() - cols.min() + 1 <= 12
    grid = np.arange(28)
    mass = image.sum()
    assert grid @ image.sum(1) / mass == pytest.approx(13.5, abs=1.0)
    assert grid @ image.sum(0) / mass == pytest.approx(13.5, abs=1.0)


def assert_upright_l(image: np.ndarray) -> None:
    """The stem is on the left, the foot at the bottom, the top right is empty."""
    rows, cols = np.nonzero(image)
    top, left = rows.min(), cols.min()
    assert image[top : top + 10, left + 7 :].sum() == 0
    assert image[top + 19, left : left + 9].min() > 0


def assert_same_character(image: np.ndarray, reference: np.ndarray, overlap: float = 0.8) -> None:
    """The bright pixels of both mostly coincide (intersection over union)."""
    a, b = image > 127, reference > 127
    assert (a & b).sum() / (a | b).sum() >= overlap


# -- modes, formats, polarities, sizes ------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "suffix"),
    [
        ("L", "png"),
        ("L", "jpg"),
        ("L", "bmp"),
        ("L", "tif"),
        ("RGB", "png"),
        ("RGB", "jpg"),
        ("RGB", "bmp"),
        ("RGB", "tiff"),
        ("RGBA", "png"),
        ("RGBA", "tif"),
        ("1", "png"),
        ("1", "bmp"),
        ("1", "tif"),
        ("P", "png"),
        ("P", "bmp"),
        ("P transparent", "png"),
        ("P transparent", "gif"),
        ("I;16", "png"),
        ("I;16", "tif"),
    ],
)
def test_every_mode_and_format_gives_the_same_mnist_style_character(tmp_path, mode, suffix):
    glyph = draw("L")
    save(glyph, tmp_path / "data" / "L" / "a_reference.png")
    written = save(in_mode(glyph, mode), tmp_path / "data" / "L" / f"b_sample.{suffix.upper()}")
    with Image.open(written) as opened:  # the file really is of that mode
        assert opened.mode in {mode.split()[0], "I" if mode == "I;16" else mode}
        assert ("transparency" in opened.info) == mode.endswith("transparent")
    reference, image = converted(tmp_path / "data", tmp_path / "cache")
    assert_mnist_like(image)
    assert_upright_l(image)
    assert_same_character(image, reference, overlap=0.95)
    assert np.abs(image.astype(int) - reference).mean() < 2  # grey levels agree too, JPEG included


def test_light_ink_on_dark_paper_is_detected_per_image(tmp_path):
    save(draw("L"), tmp_path / "data" / "L" / "dark_on_light.png")
    save(draw("L", ink=235, paper=15), tmp_path / "data" / "L" / "light_on_dark.png")  # chalk on a board
    light = Image.merge("RGBA", (*[Image.new("L", (60, 80), 250)] * 3, ImageOps.invert(draw("L", paper=255))))
    save(light, tmp_path / "data" / "L" / "light_on_transparent.png")
    reference, chalk, transparent = converted(tmp_path / "data", tmp_path / "cache")
    for image in (chalk, transparent):
        assert_mnist_like(image)
        assert_upright_l(image)
        assert np.abs(image.astype(int) - reference).mean() < 3
    forced = converted(tmp_path / "data", tmp_path / "cache", ink="light")[1]
    assert np.array_equal(forced, chalk)


def test_a_forced_polarity_is_obeyed(tmp_path):
    save(draw("L", ink=235, paper=15), tmp_path / "data" / "L" / "light_on_dark.png")
    right = converted(tmp_path / "data", tmp_path / "cache", ink="light")[0]
    wrong = converted(tmp_path / "data", tmp_path / "cache", ink="dark")[0]
    assert_mnist_like(right)
    assert lit(wrong) > 2 * lit(right)  # the dark board read as ink: a white slab


def test_grey_uneven_paper_and_faint_pencil_give_a_black_background(tmp_path):
    rng = np.random.default_rng(0)
    clean = np.asarray(draw("L", ink=0, paper=255), dtype=np.float64) / 255  # 1 = paper, 0 = stroke
    height, width = clean.shape
    paper = 165 + np.linspace(-15, 15, width)[None, :] + rng.normal(0, 4, (height, width))  # shadowed
    pencil = paper - 45 + rng.normal(0, 4, (height, width))  # graphite only 45 levels below the paper
    page = np.clip(clean * paper + (1 - clean) * pencil, 0, 255).astype(np.uint8)
    save(draw("L"), tmp_path / "data" / "L" / "a_clean.png")
    save(Image.fromarray(page), tmp_path / "data" / "L" / "b_pencil.png")
    reference, image = converted(tmp_path / "data", tmp_path / "cache")
    assert_mnist_like(image)
    assert_upright_l(image)
    # Away from the strokes the paper is exactly black: no grey box around the character.
    near = reference > 0
    for axis, shift in ((0, 1), (0, -1), (1, 1), (1, -1)):
        near = near | np.roll(near, shift, axis)
    assert image[~near].max() == 0
    rows, cols = np.nonzero(reference)
    box = image[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    assert np.median(box) == 0
    assert MNIST_LIT[0] < lit(image) < MNIST_LIT[1]
    assert lit(image) == pytest.approx(lit(reference), rel=0.3)
    assert_same_character(image, reference, overlap=0.7)


@pytest.mark.parametrize(
    ("size", "stroke"), [((12, 16), 1), ((24, 30), 2), ((1500, 2000), 150)], ids=["16px", "30px", "2000px"]
)
def test_tiny_crops_and_large_scans_fit_the_same_box(tmp_path, size, stroke):
    save(draw("L"), tmp_path / "data" / "L" / "a_reference.png")
    save(draw("L", size=size, stroke=stroke), tmp_path / "data" / "L" / "b_sample.png")
    reference, image = converted(tmp_path / "data", tmp_path / "cache")
    assert_mnist_like(image)
    assert_upright_l(image)
    assert_same_character(image, reference, overlap=0.6)


def test_a_bold_ring_cropped_to_its_edges_keeps_its_polarity(tmp_path):
    ring = Image.new("L", (30, 30), 255)
    ImageDraw.Draw(ring).ellipse([0, 0, 29, 29], outline=0, width=7)
    assert 0.4 < (np.asarray(ring) < 128).mean() < 0.6  # as much ink as paper: the border decides
    save(ring, tmp_path / "data" / "O" / "dark.png")
    save(ImageOps.invert(ring), tmp_path / "data" / "O" / "light.png")
    for image in converted(tmp_path / "data", tmp_path / "cache"):
        assert_mnist_like(image, tall=False)
        assert image[12:16, 12:16].max() == 0 and image[13, 4:8].max() == 255  # the hole stays dark


# -- classes and the held-out split -------------------------------------------------------------
def test_class_names_are_the_sorted_sub_folders_and_other_files_are_ignored(tmp_path):
    data = make_folder(tmp_path / "data", {"O": 2, "L": 3, "Lb": 1})
    (data / "README.txt").write_text("not a class")
    (data / "L" / "notes.txt").write_text("not an image")
    (data / "L" / ".hidden.png").write_bytes(b"editor junk")
    save(draw("O"), data / ".ipynb_checkpoints" / "x.png")
    save(draw("L"), data / "L" / "nested" / "deeper.png")  # any depth below the class folder
    dm = module(data, tmp_path / "cache", test_fraction=0)
    assert dm.class_names == ("L", "Lb", "O") and dm.num_classes == 3
    images, labels = dm.split(train=True)
    assert images.shape == (7, 1, 28, 28) and images.dtype == torch.uint8
    assert labels.tolist() == [0, 0, 0, 0, 1, 2, 2]
    assert len(dm.split(train=False)[0]) == 0


def test_test_fraction_is_drawn_per_class_by_seed_and_leaves_every_class_a_training_image(tmp_path):
    data = make_folder(tmp_path / "data", {"L": 10, "O": 10, "Lsmall": 3, "Lone": 1})

    def split(**kwargs):
        dm = module(data, tmp_path / "cache", **kwargs)
        return dm.split(train=True), dm.split(train=False), dm.converted()

    (train, train_labels), (test, test_labels), (everything, all_labels) = split(test_fraction=0.5, seed=3)
    # Labels follow the sorted names: L, Lone, Lsmall, O.
    assert torch.bincount(test_labels, minlength=4).tolist() == [5, 0, 2, 5]
    assert torch.bincount(train_labels, minlength=4).tolist() == [5, 1, 1, 5]

    # Together they are the whole folder, each image once.
    def pairs(images, labels):
        return sorted((int(label), bytes(image.numpy())) for image, label in zip(images, labels, strict=True))

    together = pairs(torch.cat([train, test]), torch.cat([train_labels, test_labels]))
    assert together == pairs(everything, all_labels) and len(set(together)) == 24
    again = split(test_fraction=0.5, seed=3)[1][0]
    assert torch.equal(again, test)  # the same split on every load
    assert not torch.equal(split(test_fraction=0.5, seed=4)[1][0], test)
    assert torch.bincount(split(test_fraction=0.1)[1][1], minlength=4).tolist() == [1, 0, 0, 1]


def test_test_per_class_replaces_the_fraction_and_never_takes_a_whole_class(tmp_path, caplog):
    data = make_folder(tmp_path / "data", {"L": 6, "O": 2})
    dm = module(data, tmp_path / "cache", test_per_class=3, test_fraction=0.1, seed=1)
    with caplog.at_level(logging.WARNING, logger="handwriting_gan.data.folder"):
        _, test_labels = dm.split(train=False)
    assert torch.bincount(test_labels).tolist() == [3, 1]  # O keeps one of its two for training
    assert torch.bincount(dm.split(train=True)[1]).tolist() == [3, 1]
    assert "'O' (2)" in caplog.text


def test_a_single_class_folder_loads(tmp_path):
    dm = module(make_folder(tmp_path / "data", {"only": 4}), tmp_path / "cache", test_per_class=1)
    dm.setup("fit")
    assert dm.class_names == ("only",) and dm.num_classes == 1
    assert dm.split(train=True)[1].tolist() == [0, 0, 0]


def test_classes_few_shot_and_image_size_through_the_real_config(tmp_path, compose):
    data = make_folder(tmp_path / "data", {"L": 4, "O": 4, "Lx": 4})
    cfg = compose(
        [
            "dataset=folder",
            f"dataset.path={data}",
            f"paths.cache_dir={tmp_path / 'cache'}",
            "dataset.image_size=32",
            "dataset.test_per_class=1",
            "dataset.classes=[O,L]",
            "dataset.per_class=2",
            "dataset.batch_size=4",
        ]
    )
    assert list(cfg.dataset.image_shape) == [1, 32, 32]
    dm = instantiate(cfg.dataset)
    dm.setup("fit")
    images, labels = dm.split(train=True)
    assert images.shape == (4, 1, 32, 32) and sorted(labels.tolist()) == [0, 0, 2, 2]
    assert sorted(dm.split(train=False)[1].tolist()) == [0, 2]
    assert dm.class_names == ("L", "Lx", "O")
    assert cfg.dataset.strict is False
    written, report = files_under(tmp_path / "cache")
    assert written.parent == tmp_path / "cache" / "folder" and report == report_path(written)


def test_the_config_requires_a_path(compose):
    cfg = compose(["dataset=folder"])
    assert cfg.dataset.path is None
    with pytest.raises(ConfigError, match=r"dataset.path=<dir> is required"):
        FolderDataModule(**{k: v for k, v in cfg.dataset.items() if k != "_target_"})


# -- the cache ----------------------------------------------------------------------------------
def refuse_to_read(monkeypatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("an image was read although the cache holds the folder")

    monkeypatch.setattr(Image, "open", fail)


def test_the_cache_serves_the_second_load_without_reading_any_image(tmp_path, monkeypatch):
    data = make_folder(tmp_path / "data", {"L": 3, "O": 3})
    before = snapshot(data)
    first = module(data, tmp_path / "cache").split(train=True)
    refuse_to_read(monkeypatch)
    second = module(data, tmp_path / "cache").split(train=True)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    written, report = files_under(tmp_path / "cache")  # complete files, no temporary left behind
    assert written.parent == tmp_path / "cache" / "folder" and written.name.startswith("data-")
    assert written.suffix == ".pt" and not written.name.startswith(".")
    assert report == report_path(written) and json.loads(report.read_text())["usable"] == 6
    assert snapshot(data) == before  # the data folder is only read


def test_an_added_or_changed_image_or_another_setting_rebuilds_the_cache(tmp_path):
    data = make_folder(tmp_path / "data", {"L": 2, "O": 2})
    cache = tmp_path / "cache"
    original = module(data, cache)
    assert len(original.converted()[1]) == 4

    save(draw("O", (70, 80)), data / "O" / "new.png")
    grown = module(data, cache)
    assert grown.cache_path() != original.cache_path() and len(grown.converted()[1]) == 5

    changed = data / "L" / "000.png"
    stat = changed.stat()
    save(draw("L", stroke=12), changed)
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    redrawn = module(data, cache)
    assert redrawn.cache_path() != grown.cache_path()
    assert not torch.equal(redrawn.converted()[0][0], grown.converted()[0][0])

    smaller = module(data, cache, fit_size=16)
    assert smaller.cache_path() != redrawn.cache_path()
    rows = torch.nonzero(smaller.converted()[0][0], as_tuple=True)[0]
    assert rows.max() - rows.min() + 1 == 16
    assert module(data, cache, ink="dark").cache_path() != redrawn.cache_path()
    assert module(data, cache, ink_threshold=100).cache_path() != redrawn.cache_path()
    assert module(data, cache, image_size=32).cache_path() != redrawn.cache_path()
    # The split is not part of the conversion: changing it reuses the cache.
    assert module(data, cache, test_per_class=1).cache_path() == redrawn.cache_path()
    assert [p.name.startswith(".") for p in files_under(cache)] == [False] * 8  # 4 caches, 4 reports


def test_an_unreadable_cache_says_to_delete_it(tmp_path):
    data = make_folder(tmp_path / "data", {"L": 2})
    dm = module(data, tmp_path / "cache")
    path = dm.cache_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"half a file")
    with pytest.raises(DataError, match=f"{path} cannot be read .*delete it to rebuild it"):
        dm.split(train=True)


# -- bad input ----------------------------------------------------------------------------------
def assert_refused(data: Path, cache: Path, *names: object, **kwargs) -> str:
    """Loading raises one DataError line naming every one of `names`, and writes nothing."""
    with pytest.raises(DataError) as error:
        module(data, cache, **kwargs).split(train=True)
    message = str(error.value)
    assert "\n" not in message
    for name in names:
        assert str(name) in message
    assert files_under(cache) == []
    return message


def test_a_missing_folder_is_named(tmp_path):
    message = assert_refused(tmp_path / "nowhere", tmp_path / "cache", f"dataset.path={tmp_path / 'nowhere'}")
    assert "does not exist" in message


def test_a_file_instead_of_a_folder_is_named(tmp_path):
    archive = tmp_path / "letters.zip"
    archive.write_bytes(b"PK")
    assert "is a file, not a folder" in assert_refused(archive, tmp_path / "cache", archive)


def test_images_without_class_folders_are_refused_with_the_layout_to_use(tmp_path):
    for index in range(2):
        save(draw("L"), tmp_path / "data" / f"{index}.png")
    message = assert_refused(tmp_path / "data", tmp_path / "cache", tmp_path / "data")
    assert "no class sub-folders (only 2 images directly inside it)" in message
    assert "a single sub-folder is enough" in message


def test_a_class_folder_without_images_is_named(tmp_path):
    data = make_folder(tmp_path / "data", {"L": 2})
    (data / "empty").mkdir()
    (data / "empty" / "notes.txt").write_text("no images here")
    assert "holds no image file" in assert_refused(data, tmp_path / "cache", data / "empty")


def load_with_warnings(
    data: Path, cache: Path, caplog, **kwargs
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(images, labels) of the whole folder and the warnings its load printed."""
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        images, labels = module(data, cache, test_fraction=0, **kwargs).split(train=True)
    return images, labels, [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def junk(data: Path) -> dict[str, Path]:
    """Files found in real folders that cannot be characters, each in a class that keeps good images."""
    files = {
        # The crop that made dataset=folder refuse a whole real folder: 1x2 pixels, no ink.
        "crop": save(Image.new("L", (1, 2), 250), data / "L" / "crop.png"),
        "speck": save(Image.new("L", (5, 3), 0), data / "O" / "speck.png"),  # all ink, 5x3 pixels
        "white": save(Image.new("RGB", (60, 80), "white"), data / "L" / "white.png"),
        "transparent": save(Image.new("RGBA", (60, 80), (0, 0, 0, 0)), data / "O" / "transparent.png"),
        "garbage": data / "O" / "garbage.png",
        "tiff": data / "L" / "broken.tif",
    }
    files["garbage"].write_bytes(b"this is not an image")
    files["tiff"].write_bytes(b"II*\x00 not a tiff")
    rng = np.random.default_rng(1)
    noise = Image.fromarray(np.clip(rng.normal(200, 3, (80, 60)), 0, 255).astype(np.uint8))
    files["scanned blank"] = save(noise, data / "O" / "scanned_blank.png")
    return files


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # Pillow's own words on the broken TIFF
def test_images_that_cannot_be_characters_are_skipped_counted_and_listed(tmp_path, caplog, monkeypatch):
    data = make_folder(tmp_path / "data", {"L": 3, "O": 2})
    bad = junk(data)
    cache = tmp_path / "cache"
    images, labels, warnings = load_with_warnings(data, cache, caplog)
    assert len(images) == 5 and torch.bincount(labels).tolist() == [3, 2]
    for image in images[:, 0].numpy():
        assert_mnist_like(image, tall=False)
    (line,) = warnings
    report = report_path(module(data, cache).cache_path())
    assert line.startswith(f"Skipped 7 of 12 images of {data} that cannot be characters: ")
    assert f"{bad['tiff']} (cannot be read as an image" in line  # the first three, in listing order
    assert f"{bad['crop']} (is 1x2 pixels, too small to hold a character" in line
    assert f"{bad['white']} (has no ink" in line and "; and 4 more." in line
    assert f"The full list: {report}." in line and "dataset.strict=true" in line

    record = json.loads(report.read_text())
    assert (record["images"], record["usable"], record["skipped"]) == (12, 5, 7)
    assert record["per_class"] == {"L": {"usable": 3, "skipped": 3}, "O": {"usable": 2, "skipped": 4}}
    reasons = {Path(entry["file"]).name: entry["reason"] for entry in record["skipped_files"]}
    assert sorted(reasons) == sorted(path.name for path in bad.values())
    assert reasons["speck.png"].startswith("is 5x3 pixels, too small")
    assert reasons["garbage.png"].startswith("cannot be read as an image")
    for blank in ("white.png", "transparent.png", "scanned_blank.png"):
        assert reasons[blank].startswith("has no ink: ")

    # From the cache: the same images and the same line, without reading any image.
    refuse_to_read(monkeypatch)
    again, _, warnings_again = load_with_warnings(data, cache, caplog)
    assert torch.equal(again, images) and warnings_again == warnings


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_worker_processes_convert_a_large_set_exactly_as_one_process_does(tmp_path, monkeypatch):
    data = make_folder(tmp_path / "data", {"L": 3, "O": 2})
    junk(data)
    files = [
        (str(path), label, path)
        for label, name in enumerate("LO")
        for path in sorted((data / name).iterdir())
    ]
    settings = Preprocessing((28, 28))
    alone = convert_characters(files, settings, "one process")
    workers = []
    real_in_workers = conversion._in_workers
    monkeypatch.setattr(conversion, "PARALLEL_FROM", 1)
    monkeypatch.setattr(conversion, "CHUNK", 2)  # several tasks per worker, so their order counts
    monkeypatch.setattr(conversion.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(
        conversion, "_in_workers", lambda *args: workers.append(args[2]) or real_in_workers(*args)
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        parallel = convert_characters(files, settings, "two processes")
    finally:
        torch.set_num_threads(threads)
    assert workers == [2]
    assert torch.equal(parallel.images, alone.images) and len(alone.images) == 5
    assert torch.equal(parallel.labels, alone.labels) and torch.equal(parallel.kept, alone.kept)
    assert parallel.skipped == alone.skipped and len(alone.skipped) == 7


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_strict_refuses_a_folder_with_any_such_image_naming_them(tmp_path):
    data = make_folder(tmp_path / "data", {"L": 3, "O": 2})
    bad = junk(data)
    with pytest.raises(DataError) as error:
        module(data, tmp_path / "cache", strict=True).split(train=True)
    message = str(error.value)
    assert message.startswith(f"7 of 12 images of {data} cannot be characters and dataset.strict=true")
    assert str(bad["tiff"]) in message and str(bad["crop"]) in message and "and 4 more" in message
    report = report_path(module(data, tmp_path / "cache").cache_path())
    assert f"dataset.strict=false writes the full list to {report}" in message
    assert "set dataset.strict=false to train without them" in message and "\n" not in message
    assert not any((tmp_path / "cache").rglob("*.*"))  # refused: nothing cached, no report


@pytest.mark.parametrize("damage", ["garbage", "truncated png", "truncated jpeg"])
def test_an_unreadable_image_is_named_with_its_reason(tmp_path, caplog, damage):
    data = make_folder(tmp_path / "data", {"L": 2, "O": 2})
    bad = data / "O" / ("bad.jpg" if damage == "truncated jpeg" else "bad.png")
    if damage == "garbage":
        bad.write_bytes(b"this is not an image")
    else:
        save(in_mode(draw("O", (600, 800)), "RGB"), bad)
        bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    images, _, (line,) = load_with_warnings(data, tmp_path / "cache", caplog)
    assert (
        len(images) == 4 and "Skipped 1 of 5 images" in line and f"{bad} (cannot be read as an image" in line
    )
    with pytest.raises(DataError, match=f"{bad} \\(cannot be read as an image"):
        module(data, tmp_path / "cache", strict=True).split(train=True)


def test_a_class_left_without_a_usable_image_is_named(tmp_path):
    data = make_folder(tmp_path / "data", {"L": 2})
    (data / "O").mkdir()
    (data / "O" / "bad.png").write_bytes(b"not an image")
    save(Image.new("L", (1, 2), 250), data / "O" / "crop.png")
    with pytest.raises(DataError) as error:
        module(data, tmp_path / "cache").split(train=True)
    message = str(error.value)
    assert message.startswith(f"Class folder {data / 'O'} has no usable image: none of its 2 images can be")
    assert (
        f"{data / 'O' / 'bad.png'} (cannot be read" in message
        and f"{data / 'O' / 'crop.png'} (is 1x2" in message
    )
    assert "Replace them with readable images of the character, or remove the class." in message


@pytest.mark.parametrize(
    ("setting", "key"),
    [
        ({"ink": "purple"}, "ink"),
        ({"ink_threshold": 0}, "ink_threshold"),
        ({"fit_size": 30}, "fit_size"),
        ({"image_size": 0}, "image_size"),
        ({"image_size": 32, "image_shape": [1, 28, 28]}, "image_shape"),
        ({"image_shape": [3, 28, 28]}, "image_shape"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"test_per_class": -1}, "test_per_class"),
        ({"strict": "yes"}, "strict"),
        ({"path": None}, "path"),
    ],
)
def test_impossible_settings_are_config_errors_before_any_file_is_read(tmp_path, setting, key):
    settings = {"path": str(tmp_path / "nowhere"), "cache_dir": str(tmp_path / "cache"), **setting}
    with pytest.raises(ConfigError, match=f"dataset.{key}="):
        FolderDataModule(batch_size=2, sample_grid=2, **settings)
    assert files_under(tmp_path) == []


# -- real data ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def omniglot_latin(tmp_path_factory) -> Path:
    """Omniglot's Latin alphabet (26 letters, 20 drawers each), unpacked from ../shared/data."""
    archive = OMNIGLOT / "images_background_small1.zip"
    if not archive.is_file():
        pytest.skip(
            f"Omniglot not found at {archive} (set HWGAN_SHARED_DATA to the folder holding omniglot/)"
        )
    target = tmp_path_factory.mktemp("omniglot")
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(target, [m for m in zipped.namelist() if "/Latin/" in m])
    return target / "images_background_small1" / "Latin"


def test_omniglot_latin_becomes_an_mnist_style_dataset(omniglot_latin, tmp_path, monkeypatch):
    before = snapshot(omniglot_latin)
    dm = module(omniglot_latin, tmp_path / "cache")
    images, labels = dm.split(train=True)
    test_images, test_labels = dm.split(train=False)
    assert dm.class_names == tuple(f"character{n:02d}" for n in range(1, 27))
    assert len(images) == 26 * 18 and len(test_images) == 26 * 2  # a tenth of 20 held out per letter
    assert torch.bincount(labels).tolist() == [18] * 26 and torch.bincount(test_labels).tolist() == [2] * 26
    everything = torch.cat([images, test_images])[:, 0].numpy()
    assert everything.shape == (520, 28, 28) and everything.dtype == np.uint8
    corners = everything[:, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert corners.max() == 0 and (everything == 0).mean() > 0.75  # black paper
    assert (everything.reshape(520, -1).max(1) == 255).all()
    assert MNIST_LIT[0] < lit(everything) < MNIST_LIT[1]
    assert snapshot(omniglot_latin) == before
    refuse_to_read(monkeypatch)
    assert torch.equal(module(omniglot_latin, tmp_path / "cache").split(train=True)[0], images)
