"""Omniglot from two fabricated zips in the authors' layout (1-bit drawings made here with Pillow): the
class table, alphabet selection, the drawer split, duplicates across the zips, the cache, junk drawings,
every error path, and the real small background sets when ../shared/data has them."""

import io
import json
import logging
import os
import stat
import zipfile
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from handwriting_gan.config import instantiate
from handwriting_gan.data.conversion import report_path
from handwriting_gan.data.omniglot import ARCHIVES, DRAWERS, SPLITS, URL, OmniglotDataModule
from handwriting_gan.data.preprocess import Preprocessing
from handwriting_gan.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("HWGAN_SHARED_DATA", REPO.parent / "shared" / "data"))
SMALL1, SMALL2 = ARCHIVES
# Characters per alphabet in the fabricated zips (real alphabets, far fewer characters).
SET1 = {"Greek": 2, "Korean": 2, "Latin": 3}
SET2 = {"Greek": 2, "Latin": 3, "Tagalog": 2}
CLASSES = [f"{a}/character{c:02d}" for a, n in sorted({**SET1, **SET2}.items()) for c in range(1, n + 1)]


# -- fabricating the archives ---------------------------------------------------------------------
def drawing(character: int, drawer: int) -> Image.Image:
    """A 40x40 1-bit drawing, black strokes on white like Omniglot's: an 'L' whose width and stroke the
    drawer's number sets, crossed by a bar as high as the character's number (0-9) sets, so every drawing
    stays a different image after cropping and fitting."""
    image = Image.new("1", (40, 40), 1)
    pen = ImageDraw.Draw(image)
    left, top, height = 4, 6, 26
    width, stroke = 8 + 2 * (drawer % 10), 2 if drawer <= 10 else 4
    bar = top + 2 + 2 * (character % 10)
    pen.rectangle([left, top, left + stroke, top + height], fill=0)
    pen.rectangle([left, top + height - stroke, left + width, top + height], fill=0)
    pen.rectangle([left, bar, left + 5, bar + 1], fill=0)
    return image


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def members(top: str, alphabets: dict[str, int]) -> dict[str, bytes]:
    """<top>/<Alphabet>/characterNN/<id>_<drawer>.png for drawers 01..20 of every character."""
    files = {}
    for alphabet, count in alphabets.items():
        for character in range(1, count + 1):
            ident = 100 * (len(alphabet) % 9) + character  # the real ids number characters, not drawers
            number = CLASSES.index(f"{alphabet}/character{character:02d}")  # each character its own bar
            for drawer in range(1, DRAWERS + 1):
                name = f"{top}/{alphabet}/character{character:02d}/{ident:04d}_{drawer:02d}.png"
                files[name] = png(drawing(number, drawer))
    return files


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted({n.rsplit("/", i)[0] + "/" for n in files for i in (1, 2, 3)}):
            archive.writestr(name, b"")  # the folder entries the real zips have
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def set1() -> dict[str, bytes]:
    return members("images_background_small1", SET1)


@pytest.fixture(scope="module")
def set2() -> dict[str, bytes]:
    return members("images_background_small2", SET2)


def write(data_dir: Path, name: str, files: dict[str, bytes]) -> Path:
    (data_dir / "omniglot").mkdir(parents=True, exist_ok=True)
    (data_dir / "omniglot" / name).write_bytes(zipped(files))
    return data_dir


@pytest.fixture
def data_dir(tmp_path, set1, set2) -> Path:
    """A data folder holding both fabricated zips; Greek and Latin are in both, byte for byte."""
    write(tmp_path / "data", SMALL1, set1)
    return write(tmp_path / "data", SMALL2, set2)


def module(data_dir: Path, cache_dir: Path, **kwargs) -> OmniglotDataModule:
    settings = {"batch_size": 4, "sample_grid": 2, **kwargs}
    return OmniglotDataModule(root=str(data_dir), cache_dir=str(cache_dir), **settings)


def snapshot(root: Path) -> list[tuple]:
    return sorted((str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*"))


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def refuse_to_convert(monkeypatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("a drawing was converted although the cache holds it")

    monkeypatch.setattr(Preprocessing, "convert", fail)


def rows_in(images: torch.Tensor, pool: torch.Tensor) -> bool:
    """Whether every image of `images` is one of `pool`."""
    flat = pool.flatten(1)
    return all((flat == image.flatten()).all(1).any() for image in images)


# -- the class table and the alphabets ------------------------------------------------------------
def test_characters_are_classes_sorted_by_alphabet_and_labelled_by_position(data_dir, tmp_path):
    dm = module(data_dir, tmp_path / "cache")
    assert list(dm.class_names) == list(dm.all_class_names) == CLASSES and dm.num_classes == 9
    assert dm.found_alphabets == dm.selected_alphabets == ("Greek", "Korean", "Latin", "Tagalog")
    images, labels, drawers = dm.converted()
    assert images.shape == (9 * DRAWERS, 28, 28) and images.dtype == torch.uint8
    assert labels.tolist() == [label for label in range(9) for _ in range(DRAWERS)]
    assert drawers.tolist() == list(range(1, DRAWERS + 1)) * 9
    # White strokes on black paper: an 'L' leaves its top right corner empty.
    assert (images.flatten(1).max(1).values == 255).all() and images[:, :3, -3:].max() == 0
    assert ((images == 0).flatten(1).float().mean(1) > 0.5).all()
    assert len({image.numpy().tobytes() for image in images}) == len(images)  # one image per drawing


def test_alphabets_by_list_by_name_and_by_split_form_their_own_label_space(data_dir, tmp_path):
    cache = tmp_path / "cache"
    by_list = module(data_dir, cache, alphabets=["Tagalog", "Greek"])
    by_split = module(data_dir, cache, alphabets="held_out_b")  # Greek and Tagalog
    expected = ["Greek/character01", "Greek/character02", "Tagalog/character01", "Tagalog/character02"]
    for dm in (by_list, by_split):
        assert dm.selected_alphabets == ("Greek", "Tagalog") and list(dm.class_names) == expected
        assert dm.num_classes == 4 and len(dm.all_class_names) == 9
        _, labels = dm.split(train=True)
        assert torch.bincount(labels).tolist() == [DRAWERS - 5] * 4
        assert torch.bincount(dm.split(train=False)[1]).tolist() == [5] * 4
    # The same drawings as in the full table, under the new labels.
    full = module(data_dir, cache)
    greek_and_tagalog = [CLASSES.index(name) for name in expected]
    full_images, full_labels = full.split(train=True)
    chosen = torch.isin(full_labels, torch.tensor(greek_and_tagalog))
    assert torch.equal(by_split.split(train=True)[0], full_images[chosen])

    latin = module(data_dir, cache, alphabets="Latin")
    assert latin.class_names == ("Latin/character01", "Latin/character02", "Latin/character03")
    # dataset.classes then names characters of the kept alphabets, in their own table.
    latin_two = module(data_dir, cache, alphabets=["Latin"], classes=["Latin/character03"])
    assert latin_two.split(train=True)[1].unique().tolist() == [2] and latin_two.num_classes == 3


def test_characters_split_each_alphabet_into_disjoint_training_and_validation_classes(data_dir, tmp_path):
    cache = tmp_path / "cache"
    every = dict(validation_every=2)  # the fabricated alphabets have 2-3 characters
    train = module(data_dir, cache, characters="train", **every)
    validation = module(data_dir, cache, characters="validation", **every)
    assert validation.class_names == (
        "Greek/character02",
        "Korean/character02",
        "Latin/character02",
        "Tagalog/character02",
    )
    assert set(train.class_names) == set(CLASSES) - set(validation.class_names)
    for dm in (train, validation):  # each part its own label space, every drawer of its characters
        _, labels = dm.split(train=True)
        assert torch.bincount(labels).tolist() == [DRAWERS - 5] * dm.num_classes
    full_images, full_labels = module(data_dir, cache).split(train=True)
    chosen = torch.isin(full_labels, torch.tensor([CLASSES.index(n) for n in validation.class_names]))
    assert torch.equal(validation.split(train=True)[0], full_images[chosen])
    # With alphabets: the part of the kept alphabets only.
    latin = module(data_dir, cache, alphabets="Latin", characters="train", **every)
    assert latin.class_names == ("Latin/character01", "Latin/character03")


@pytest.mark.parametrize(
    ("setting", "match"),
    [
        (dict(characters="test"), r"dataset.characters=test must be one of all, train, validation"),
        (dict(validation_every=1), r"dataset.validation_every=1 must be a whole number of at least 2"),
        (dict(characters="validation", validation_every=7), r"keeps none of the 9 characters"),
    ],
)
def test_impossible_character_splits_are_config_errors(data_dir, tmp_path, setting, match):
    with pytest.raises(ConfigError, match=match):
        module(data_dir, tmp_path / "cache", **setting).split(train=True)


def test_an_unknown_alphabet_is_a_config_error_listing_the_alphabets_and_splits(data_dir, tmp_path):
    dm = module(data_dir, tmp_path / "cache", alphabets=["Latin", "Klingon"])
    with pytest.raises(ConfigError) as error:
        dm.split(train=True)
    message = str(error.value)
    assert message.startswith("dataset.alphabets=['Latin', 'Klingon'] names ['Klingon'], which Omniglot")
    assert "Its alphabets are: Greek, Korean, Latin, Tagalog" in message
    assert all(split in message for split in SPLITS) and "\n" not in message
    with pytest.raises(ConfigError, match=r"dataset.alphabets=\[\] keeps no alphabet"):
        module(data_dir, tmp_path / "cache", alphabets=[])


def test_an_alphabet_of_a_missing_zip_names_that_zip(tmp_path, set1):
    data = write(tmp_path / "data", SMALL1, set1)
    dm = module(data, tmp_path / "cache", alphabets="held_out_b")
    with pytest.raises(DataError) as error:
        dm.split(train=True)
    message = str(error.value)
    assert "needs Tagalog, which images_background_small2.zip holds" in message
    assert f"{data / 'omniglot'} has only images_background_small1.zip" in message and URL in message


def test_either_zip_alone_loads_its_own_alphabets(tmp_path, set1, set2):
    for name, files, alphabets in ((SMALL1, set1, SET1), (SMALL2, set2, SET2)):
        data = write(tmp_path / name, name, files)
        dm = module(data, tmp_path / "cache")
        assert dm.found_alphabets == tuple(sorted(alphabets))
        assert len(dm.split(train=True)[0]) == sum(alphabets.values()) * (DRAWERS - 5)


def test_the_named_splits_are_disjoint_and_cover_all_eight_alphabets():
    alphabets = [a for names in SPLITS.values() for a in names]
    assert len(alphabets) == len(set(alphabets)) == 8
    assert set(alphabets) == {a for names in ARCHIVES.values() for a in names}
    assert "Latin" in SPLITS["source"] and "Korean" in SPLITS["source"]


# -- the drawer split -----------------------------------------------------------------------------
def test_the_last_drawers_are_the_test_split_and_per_class_picks_from_the_others(data_dir, tmp_path):
    cache = tmp_path / "cache"
    dm = module(data_dir, cache)
    train, train_labels = dm.split(train=True)
    test, test_labels = dm.split(train=False)
    assert dm.drawers(train=True).tolist() == list(range(1, 16)) * 9
    assert dm.drawers(train=False).tolist() == list(range(16, 21)) * 9
    assert len(train) == 9 * 15 and len(test) == 9 * 5
    assert not rows_in(test[:1], train)  # another drawer's drawing

    for per_class in (5, 10, 15):
        few = module(data_dir, cache, per_class=per_class, seed=3)
        images, labels = few.split(train=True)
        assert torch.bincount(labels).tolist() == [per_class] * 9
        assert rows_in(images, train)  # drawers 01-15 only: the test's drawers are never trained on
        assert torch.equal(few.split(train=False)[0], test)  # the whole test split, whatever per_class
    assert not torch.equal(
        module(data_dir, cache, per_class=5, seed=3).split(train=True)[0],
        module(data_dir, cache, per_class=5, seed=4).split(train=True)[0],
    )

    three = module(data_dir, cache, test_drawers=3)
    assert three.drawers(train=False).unique().tolist() == [18, 19, 20]
    assert len(three.split(train=True)[0]) == 9 * 17


@pytest.mark.parametrize("test_drawers", [0, DRAWERS, -1, True, 2.5])
def test_test_drawers_must_leave_drawers_on_both_sides(tmp_path, test_drawers):
    with pytest.raises(ConfigError, match=f"dataset.test_drawers={test_drawers} must be a number of drawers"):
        module(tmp_path, tmp_path, test_drawers=test_drawers)


@pytest.mark.parametrize(
    ("setting", "key"),
    [
        ({"image_shape": [1, 32, 32]}, "image_shape"),
        ({"image_size": 0}, "image_size"),
        ({"fit_size": 30}, "fit_size"),
        ({"strict": "yes"}, "strict"),
    ],
)
def test_impossible_settings_are_config_errors(tmp_path, setting, key):
    with pytest.raises(ConfigError, match=f"dataset.{key}="):
        module(tmp_path, tmp_path, **setting)


# -- reading the zips -----------------------------------------------------------------------------
def test_duplicates_across_the_zips_are_read_once(data_dir, tmp_path):
    drawings = module(data_dir, tmp_path / "cache").drawings()
    assert len(drawings.names) == len(set(drawings.names)) == 9 * DRAWERS
    greek = [i for i, name in enumerate(drawings.names) if name.startswith("Greek/")]
    assert {drawings.archives[i].name for i in greek} == {SMALL1}  # read from the first zip
    tagalog = [i for i, name in enumerate(drawings.names) if name.startswith("Tagalog/")]
    assert {drawings.archives[i].name for i in tagalog} == {SMALL2}


def test_duplicates_that_differ_are_a_data_error_naming_the_file(tmp_path, set1, set2):
    changed = dict(set2)
    member = "images_background_small2/Greek/character02/0502_07.png"
    changed[member] = png(drawing(99, 3))
    data = write(tmp_path / "data", SMALL1, set1)
    write(data, SMALL2, changed)
    with pytest.raises(DataError) as error:
        module(data, tmp_path / "cache").split(train=True)
    message = str(error.value)
    assert message.startswith("Greek/character02/0502_07.png differs between ")
    assert str(data / "omniglot" / SMALL1) in message and str(data / "omniglot" / SMALL2) in message


def test_missing_zips_name_the_folder_the_files_and_where_to_get_them(tmp_path):
    with pytest.raises(DataError) as error:
        module(tmp_path / "data", tmp_path / "cache").split(train=True)
    message = str(error.value)
    assert (
        f"Omniglot is missing from {tmp_path / 'data' / 'omniglot'}: neither {SMALL1} nor {SMALL2} is"
        in message
    )
    assert "github.com/brendenlake/omniglot" in message
    assert f"python/{SMALL1} (SHA-256 f38eb80f8012...) and python/{SMALL2} (SHA-256 " in message
    assert files_under(tmp_path) == []  # nothing downloaded, unpacked or cached


def test_a_corrupt_zip_or_a_character_missing_a_drawer_is_a_data_error(tmp_path, set1):
    (tmp_path / "data" / "omniglot").mkdir(parents=True)
    (tmp_path / "data" / "omniglot" / SMALL1).write_bytes(zipped(set1)[:-200])
    with pytest.raises(DataError, match=f"{SMALL1} cannot be read as a zip archive"):
        module(tmp_path / "data", tmp_path / "cache").split(train=True)

    gone = "images_background_small1/Greek/character02/0502_20.png"
    short = {name: content for name, content in set1.items() if name != gone}
    assert len(short) == len(set1) - 1
    data = write(tmp_path / "short", SMALL1, short)
    with pytest.raises(DataError, match=r"every character: Greek/character02 \(missing drawer 20\)"):
        module(data, tmp_path / "cache").split(train=True)
    assert files_under(tmp_path / "cache") == []


def test_cache_is_written_once_outside_a_read_only_data_folder_and_read_back(data_dir, tmp_path, monkeypatch):
    folder = data_dir / "omniglot"
    for path in (*folder.iterdir(), folder, data_dir):
        path.chmod(stat.S_IREAD | (stat.S_IEXEC if path.is_dir() else 0))
    try:
        before = snapshot(data_dir)
        cache = tmp_path / "cache"
        first = module(data_dir, cache, alphabets="held_out_b").split(train=True)[0]
        assert snapshot(data_dir) == before  # read in place: nothing unpacked or cached beside the zips
    finally:
        for path in (data_dir, folder, *folder.iterdir()):
            path.chmod(stat.S_IRWXU)
    written, report = files_under(cache)
    assert written.parent == cache / "omniglot" and written.name.startswith("omniglot-")
    assert report == report_path(written)
    record = json.loads(report.read_text())
    assert record["images"] == record["usable"] == 9 * DRAWERS and record["skipped_files"] == []
    assert record["per_class"]["Korean/character01"] == {"usable": DRAWERS, "skipped": 0}  # every alphabet

    refuse_to_convert(monkeypatch)  # another load, other alphabets: all from the one cache
    assert torch.equal(module(data_dir, cache, alphabets=["Greek", "Tagalog"]).split(train=True)[0], first)
    assert len(module(data_dir, cache, alphabets=["Korean"]).split(train=False)[0]) == 2 * 5
    assert module(data_dir, cache, alphabets="Latin").cache_path() == written


def test_the_cache_follows_the_drawings_bytes_and_the_settings(data_dir, tmp_path, set1, set2):
    cache = tmp_path / "cache"
    original = module(data_dir, cache).cache_path()
    assert module(data_dir, cache, fit_size=16).cache_path() != original
    assert module(data_dir, cache, image_size=32).cache_path() != original
    repacked = write(tmp_path / "repacked", SMALL2, set2)  # the same drawings, zipped anew
    write(repacked, SMALL1, set1)
    assert module(repacked, cache).cache_path() == original
    redrawn = dict(set2)
    redrawn["images_background_small2/Tagalog/character01/0701_04.png"] = png(drawing(98, 4))
    write(repacked, SMALL2, redrawn)
    assert module(repacked, cache).cache_path() != original


def test_a_drawing_that_cannot_be_a_character_is_left_out_and_reported_unless_strict(
    tmp_path, set1, set2, caplog
):
    junk = dict(set2)
    blank = "images_background_small2/Tagalog/character02/0702_03.png"
    junk[blank] = png(Image.new("1", (35, 35), 1))
    broken = "images_background_small2/Tagalog/character02/0702_17.png"
    junk[broken] = b"half a png"
    data = write(tmp_path / "data", SMALL1, set1)
    write(data, SMALL2, junk)
    with caplog.at_level(logging.WARNING):
        dm = module(data, tmp_path / "cache")
        images, labels, drawers = dm.converted()
    assert len(images) == 9 * DRAWERS - 2 and (labels == 8).sum() == DRAWERS - 2
    assert 3 not in drawers[labels == 8].tolist() and 17 not in drawers[labels == 8].tolist()
    assert torch.bincount(dm.split(train=True)[1]).tolist() == [15] * 8 + [14]
    assert torch.bincount(dm.split(train=False)[1]).tolist() == [5] * 8 + [4]
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert line.startswith(f"Skipped 2 of {9 * DRAWERS} images of {data / 'omniglot'}") and "\n" not in line
    assert f"{SMALL2}: Tagalog/character02/0702_03.png (has no ink" in line
    assert "0702_17.png (cannot be read as an image" in line
    report = json.loads(report_path(dm.cache_path()).read_text())
    assert report["per_class"]["Tagalog/character02"] == {"usable": DRAWERS - 2, "skipped": 2}

    with pytest.raises(DataError) as error:  # strict: the same drawings stop the run, read from the cache
        module(data, tmp_path / "cache", strict=True).split(train=True)
    assert "2 of 180 images" in str(error.value) and "dataset.strict=true refuses them" in str(error.value)


def test_alphabets_and_split_through_the_real_config(data_dir, tmp_path, compose):
    cfg = compose(
        [
            "dataset=omniglot",
            f"paths.data_dir={data_dir}",
            f"paths.cache_dir={tmp_path / 'cache'}",
            "dataset.alphabets=held_out_b",
            "dataset.per_class=5",
        ]
    )
    assert cfg.dataset.test_drawers == 5 and cfg.dataset.strict is False
    assert list(cfg.dataset.image_shape) == [1, 28, 28] and cfg.dataset.fit_size == 20
    dm = instantiate(cfg.dataset)
    dm.setup("fit")
    images, labels = dm.split(train=True)
    assert images.shape == (4 * 5, 1, 28, 28) and torch.bincount(labels).tolist() == [5] * 4
    listed = compose(["dataset=omniglot", f"paths.data_dir={data_dir}", "dataset.alphabets=[Latin,Greek]"])
    assert instantiate(listed.dataset).selected_alphabets == ("Greek", "Latin")


# -- the real small background sets ---------------------------------------------------------------
@pytest.fixture(scope="session")
def real_omniglot(tmp_path_factory) -> OmniglotDataModule:
    """Both real zips, converted once for the session into a temporary cache; skips when absent."""
    folder = SHARED_DATA / "omniglot"
    if not all((folder / name).is_file() for name in ARCHIVES):
        pytest.skip(
            f"the real Omniglot zips ({', '.join(ARCHIVES)}) are not under {folder} "
            f"(set HWGAN_SHARED_DATA to the folder holding omniglot/)"
        )
    dm = module(SHARED_DATA, tmp_path_factory.mktemp("omniglot_cache"))
    dm.converted()
    return dm


def test_the_real_sets_hold_eight_alphabets_of_twenty_drawers_each(real_omniglot):
    dm = real_omniglot
    assert dm.found_alphabets == tuple(sorted({a for names in ARCHIVES.values() for a in names}))
    # 26 + 24 + 40 + 24 + 22 characters in set 1, 47 + 42 + 17 more in set 2 (shared/data/README.md's
    # "218 characters" is a miscount of these: 4,840 drawings / 20 drawers = 242).
    per_alphabet = {a: sum(n.startswith(f"{a}/") for n in dm.all_class_names) for a in dm.found_alphabets}
    assert per_alphabet == {
        "Balinese": 24,
        "Early_Aramaic": 22,
        "Greek": 24,
        "Japanese_(katakana)": 47,
        "Korean": 40,
        "Latin": 26,
        "Sanskrit": 42,
        "Tagalog": 17,
    }
    assert dm.num_classes == 242 and dm.class_names[0] == "Balinese/character01"
    images, labels, drawers = dm.converted()
    assert len(images) == len(dm.drawings().names) == 4840  # every drawing converts
    assert torch.bincount(labels).tolist() == [DRAWERS] * 242
    assert torch.equal(drawers, torch.arange(1, DRAWERS + 1).repeat(242))
    assert torch.bincount(dm.split(train=True)[1]).tolist() == [15] * 242
    assert torch.bincount(dm.split(train=False)[1]).tolist() == [5] * 242


def test_the_real_drawings_become_white_strokes_on_black(real_omniglot):
    images = real_omniglot.converted()[0].float()
    assert (images.flatten(1).max(1).values == 255).all()  # white ink in every image
    assert (images.flatten(1).median(1).values == 0).all()  # black paper
    corners = images[:, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners == 0).float().mean() > 0.99
    lit = (images > 127).float().mean()
    assert 0.03 < lit < 0.25, lit  # thin pen strokes: MNIST has 13% of pixels brighter than half
    grid = torch.arange(28.0)
    mass = images.sum((1, 2))
    centre = ((images.sum(2) @ grid) / mass, (images.sum(1) @ grid) / mass)
    assert all((axis - 13.5).abs().max() < 1.5 for axis in centre)  # centred by mass


def test_the_real_splits_are_disjoint_alphabet_sets_with_their_own_labels(real_omniglot, compose):
    sizes = {}
    for split, names in SPLITS.items():
        cfg = compose(
            [
                "dataset=omniglot",
                f"paths.data_dir={SHARED_DATA}",
                f"paths.cache_dir={real_omniglot.cache_dir}",
                f"dataset.alphabets={split}",
            ]
        )
        dm = instantiate(cfg.dataset)
        assert dm.selected_alphabets == tuple(sorted(names))
        images, labels = dm.split(train=True)
        assert images.shape[1:] == (1, 28, 28) and labels.unique().tolist() == list(range(dm.num_classes))
        sizes[split] = dm.num_classes
    assert sizes == {"source": 47 + 40 + 26 + 42, "held_out_a": 24 + 22, "held_out_b": 24 + 17}
    assert sum(sizes.values()) == real_omniglot.num_classes
