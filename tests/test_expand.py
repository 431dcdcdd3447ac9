"""`python -m handwriting_gan.expand`: a folder of a few images per class expanded with an augmenter into a
labelled dataset (real and synthetic images marked), samples.png and the measured gain; written whole or
not at all, continued after an interrupt. In process with a tiny trained augmenter, except the command
line and the notebook (marked process)."""

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image, ImageDraw
from torchvision.datasets import ImageFolder
from torchvision.datasets.mnist import read_image_file, read_label_file

import handwriting_gan.expand.measure as measure
import handwriting_gan.expand.writing as expand_writing
from handwriting_gan.config import compose_config
from handwriting_gan.data.expanded import ExpandedDataModule
from handwriting_gan.data.exports import IDX_IMAGES, IDX_LABELS, read_export
from handwriting_gan.data.folder import FolderDataModule
from handwriting_gan.errors import CheckpointError, ConfigError, DataError
from handwriting_gan.expand import expand_folder
from handwriting_gan.expand.measure import held_out
from handwriting_gan.expand.report import verdict
from tests_support import FAST, train_in_process, write_untrained_run

CLASSES = ("a", "b", "c")
PER_CLASS = 6
# Seconds-long measurement: 2 seeds, classifiers of 5 steps, 2 classical trials of 1 or 2 copies.
TINY = {
    "seeds": 2,
    "threads": 1,
    "device": "cpu",
    "arm_classifier": {"steps": 5},
    "classical_search": {"trials": 2, "steps": 5, "copies": [1, 2]},
    "classifier": {"channels": [8, 16], "feature_dim": 32},
    "samples": {"real": 2, "variations": 2},
}
TINY_CLI = [
    "seeds=2",
    "threads=1",
    "device=cpu",
    "arm_classifier.steps=5",
    "classical_search.trials=2",
    "classical_search.steps=5",
    "classical_search.copies=[1,2]",
    "classifier.channels=[8,16]",
    "classifier.feature_dim=32",
]


def draw_letters(root: Path, classes=CLASSES, per_class=PER_CLASS, junk: bool = True) -> Path:
    """An ImageFolder of dark strokes on white paper: a ring, a cross and a box, each drawn with its own
    jitter; with `junk`, one blank image and one unreadable file, which must be skipped and reported."""
    random = np.random.default_rng(0)
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for index in range(per_class):
            image = Image.new("L", (40, 40), 255)
            draw = ImageDraw.Draw(image)
            a, b, c, d = (int(v) for v in random.integers(-3, 4, size=4))
            if label % 3 == 0:
                draw.ellipse((8 + a, 8 + b, 32 + c, 32 + d), outline=0, width=3)
            elif label % 3 == 1:
                draw.line((8 + a, 8 + b, 32 + c, 32 + d), fill=0, width=3)
                draw.line((32 + a, 8, 8, 32 + b), fill=0, width=3)
            else:
                draw.rectangle((10 + a, 10 + b, 30 + c, 30 + d), outline=0, width=3)
            image.save(root / name / f"{index:02d}.png")
    if junk:
        Image.new("L", (40, 40), 255).save(root / classes[1] / "blank.png")
        (root / classes[2] / "broken.png").write_bytes(b"not an image")
    return root


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def augmenter_run(tmp_path_factory) -> Path:
    """A tiny image-conditional augmenter (model=dagan), trained for a few batches on the fake data."""
    run = tmp_path_factory.mktemp("augmenter") / "run"
    overrides = [*FAST, "model=dagan", "model.generator.channels=8", "model.discriminator.channels=8"]
    return train_in_process([*overrides, "model.ema_start=2", f"paths.cache_dir={run.parent / 'cache'}"], run)


@pytest.fixture(scope="module")
def letters(tmp_path_factory) -> Path:
    return draw_letters(tmp_path_factory.mktemp("letters") / "letters")


def expand_toy(folder: Path, out: Path, augmenter: Path, **settings):
    return expand_folder(
        folder, out, augmenter=augmenter, cache_dir=out.parent / "cache", **{**TINY, **settings}
    )


@pytest.fixture(scope="module")
def expanded(letters, augmenter_run, tmp_path_factory):
    """The default path at toy size: imagefolder, 10 x each class, measured; (out, result, the folder's
    files before, the report printed)."""
    before = snapshot(letters)
    out = tmp_path_factory.mktemp("expanded") / "out"
    result = expand_toy(letters, out, augmenter_run)
    return out, result, before


def manifest_of(out: Path) -> dict:
    return json.loads((out / "export.json").read_text())


# -- the expanded dataset ---------------------------------------------------------------------------
def test_every_class_grows_to_ten_times_its_real_images_which_are_all_kept(expanded, letters):
    out, result, _ = expanded
    counts = {"00_a": 6, "01_b": 6, "02_c": 6}  # the junk files of b and c are left out
    assert result["class_counts"] == {name: {"real": n, "synthetic": 9 * n} for name, n in counts.items()}
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == list(counts)
    for name, n in counts.items():
        assert len(list((out / name).glob("*.png"))) == 10 * n
    # The real images are the folder dataset's own conversion of the user's files.
    real, _ = FolderDataModule(
        str(letters), str(out.parent / "cache"), test_fraction=0.0, **_sizes()
    ).converted()
    exported = read_export(out)
    assert torch.equal(exported.images[~_synthetic(out)][:, 0], real)
    assert not (out.parent / "out.partial").exists()


def _sizes() -> dict:
    return {"batch_size": 64, "sample_grid": 8}


def _synthetic(out: Path) -> torch.Tensor:
    """export.json's marks, in read_export's order (class folder by class folder, by file name)."""
    images = sorted(manifest_of(out)["images"], key=lambda record: (record["label"], record["index"]))
    return torch.tensor([record["synthetic"] for record in images])


def test_the_manifest_says_of_each_image_whether_it_is_real_and_where_it_came_from(
    expanded, letters, augmenter_run
):
    out, _, _ = expanded
    record = manifest_of(out)
    images = record["images"]
    assert len(images) == record["num_samples_kept"] == record["num_real"] + record["num_synthetic"] == 180
    by_index = {image["index"]: image for image in images}
    for image in images:
        assert (out / image["file"]).is_file()
        if image["synthetic"]:
            source = by_index[image["source"]]
            assert not source["synthetic"] and source["label"] == image["label"]  # a variation of its class
        else:
            assert (letters / image["original"]).is_file() and image["original"].startswith(
                image["class_name"]
            )
    sources = [image["source"] for image in images if image["synthetic"]]
    assert set(sources) == {image["index"] for image in images if not image["synthetic"]}  # every one varied
    assert record["augmenter"]["kind"] == "image-conditional"
    assert record["augmenter"]["augmenter"] == str(augmenter_run)
    assert record["augmenter"]["file"].endswith("generator.pt") and record["augmenter"]["seed"] == 0
    assert record["package_version"] and record["settings"]["seeds"] == 2
    assert {(s["class"], Path(s["file"]).name) for s in record["skipped_files"]} == {
        ("b", "blank.png"),
        ("c", "broken.png"),
    }


def test_the_users_folder_is_only_read(expanded, letters):
    assert snapshot(letters) == expanded[2]


def test_the_folder_dataset_and_torchvision_read_the_expanded_folder(expanded):
    out, _, _ = expanded
    folder = ImageFolder(out)
    assert folder.classes == ["00_a", "01_b", "02_c"] and len(folder) == 180
    dataset = FolderDataModule(str(out), str(out.parent / "cache"), test_fraction=0.0, **_sizes())
    images, labels = dataset.split(train=True)
    assert dataset.class_names == ("00_a", "01_b", "02_c") and len(images) == 180
    assert torch.bincount(labels).tolist() == [60, 60, 60]


def test_samples_png_shows_each_classs_real_images_then_their_variations(expanded):
    out, _, _ = expanded
    sheet = Image.open(out / "samples.png")
    cells = 2 * (1 + 2)  # TINY: 2 real images per class, each followed by 2 variations
    assert sheet.size == (72 + cells * 56, 3 * (56 + 12))
    exported = read_export(out)
    first_real = exported.images[0, 0].numpy()
    cell = np.asarray(sheet.crop((72, 0, 72 + 56, 56)).resize((28, 28), Image.Resampling.NEAREST))
    assert np.array_equal(cell, first_real)
    varied = np.asarray(sheet.crop((72 + 56, 0, 72 + 112, 56)).resize((28, 28), Image.Resampling.NEAREST))
    assert varied.any() and not np.array_equal(varied, first_real)


def test_the_report_gives_each_seeds_accuracies_the_gain_and_a_sentence(expanded):
    out, result, _ = expanded
    report = json.loads((out / "report.json").read_text())
    assert report == result["report"]
    assert list(report["arms"]) == ["real", "classical", "classical_augmenter"]
    for arm in report["arms"].values():
        assert len(arm["test_acc"]) == 2 and all(0 <= value <= 1 for value in arm["test_acc"])
    b, g = report["arms"]["classical"]["test_acc"], report["arms"]["classical_augmenter"]["test_acc"]
    assert report["gain"]["per_seed"] == pytest.approx([100 * (y - x) for x, y in zip(b, g, strict=True)])
    assert report["held_out_images"] == [6, 6]  # a quarter of each class's 6, rounded: 2 of each
    text = (out / "report.md").read_text()
    assert report["sentence"] in text and "| (g) + classical + augmenter |" in text
    assert manifest_of(out)["measurement"]["sentence"] == report["sentence"]


@pytest.mark.parametrize(
    ("gains", "start"),
    [
        ([2.0, 1.0, 3.0], "The expansion helped on this data"),
        ([-1.0, 0.0, 0.5], "The expansion did not help on this data"),
        ([5.0, -1.0, -1.0], "It is unclear whether the expansion helped"),
    ],
)
def test_the_sentence_says_whether_the_expansion_helped(gains, start):
    sentence = verdict(gains)
    assert sentence.startswith(start)
    assert f"{sum(g > 0 for g in gains)} of 3 seeds" in sentence


def test_each_seed_holds_out_a_quarter_of_each_class_and_leaves_three_to_train():
    labels = torch.tensor([0] * 4 + [1] * 12 + [2] * 5)
    first, second = held_out(labels, 0.25, seed=0), held_out(labels, 0.25, seed=1)
    assert [int(first[labels == c].sum()) for c in range(3)] == [1, 3, 1]
    assert torch.equal(first, held_out(labels, 0.25, seed=0)) and not torch.equal(first, second)
    assert [int(held_out(labels, 0.9, seed=0)[labels == c].sum()) for c in range(3)] == [1, 9, 2]


def test_npz_marks_each_synthetic_image_and_dataset_expanded_reads_it(letters, augmenter_run, tmp_path):
    out = tmp_path / "out"
    result = expand_toy(letters, out, augmenter_run, fmt="npz", per_class=8, measure=False)
    assert result["report"] is None and not (out / "report.md").exists()
    with np.load(out / "dataset.npz") as arrays:
        assert {"images", "labels", "class_names", "confidences", "synthetic", "source"} <= set(arrays.files)
        synthetic, source, labels = arrays["synthetic"], arrays["source"], arrays["labels"]
    assert (
        synthetic.dtype == bool and synthetic.sum() == 24 - 18 and np.bincount(labels).tolist() == [8, 8, 8]
    )
    assert (source[~synthetic] == -1).all() and (labels[source[synthetic]] == labels[synthetic]).all()
    real = FolderDataModule(str(letters), str(tmp_path / "cache"), test_fraction=0.0, **_sizes())
    mixed = ExpandedDataModule(real, str(out), synthetic_ratio=None, **_sizes(), image_shape=(1, 28, 28))
    images, _ = mixed.split(train=True)
    # The real split plus the export's synthetic images only: its real ones are the folder's own.
    assert len(images) == 18 + 6
    assert read_export(out).synthetic.sum() == 6


def test_an_imagefolder_expansion_marks_its_synthetic_images_for_dataset_expanded(
    expanded, letters, tmp_path
):
    out, result, _ = expanded
    export = read_export(out)
    assert int(export.synthetic.sum()) == result["num_synthetic"] and int((~export.synthetic).sum()) == 18
    real = FolderDataModule(str(letters), str(tmp_path / "cache"), test_fraction=0.0, **_sizes())
    mixed = ExpandedDataModule(real, str(out), synthetic_ratio=None, **_sizes(), image_shape=(1, 28, 28))
    assert len(mixed.split(train=True)[0]) == 18 + result["num_synthetic"]


def test_idx_reads_back_with_torchvision(letters, augmenter_run, tmp_path):
    out = tmp_path / "out"
    expand_toy(letters, out, augmenter_run, fmt="idx", per_class=7, measure=False)
    for name in (IDX_IMAGES, IDX_LABELS):
        (tmp_path / name.removesuffix(".gz")).write_bytes(gzip.decompress((out / name).read_bytes()))
    images = read_image_file(str(tmp_path / IDX_IMAGES.removesuffix(".gz")))
    labels = read_label_file(str(tmp_path / IDX_LABELS.removesuffix(".gz")))
    assert images.shape == (21, 28, 28) and torch.bincount(labels).tolist() == [7, 7, 7]
    assert torch.equal(read_export(out).images[:, 0], images)


def test_overwrite_replaces_a_previous_expansion_only_once_the_new_one_is_complete(
    letters, augmenter_run, tmp_path
):
    out = tmp_path / "out"
    expand_toy(letters, out, augmenter_run, per_class=6, measure=False)
    with pytest.raises(ConfigError, match="already exists; pass overwrite=true"):
        expand_toy(letters, out, augmenter_run, per_class=7, measure=False)
    expand_toy(letters, out, augmenter_run, per_class=7, measure=False, overwrite=True)
    assert manifest_of(out)["num_samples_kept"] == 21
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "out"]


# -- bad inputs -------------------------------------------------------------------------------------
def _make(kind: str, root: Path) -> Path:
    """A folder for each bad input (`good`: the toy folder, for the mistakes in the arguments)."""
    if kind == "file":
        root.write_text("not a folder")
    elif kind == "loose":
        root.mkdir()
        Image.new("L", (40, 40), 0).save(root / "a.png")
    elif kind == "one class":
        draw_letters(root, classes=("a",), junk=False)
    elif kind == "blank class":
        draw_letters(root)
        for file in (root / "a").iterdir():
            Image.new("L", (40, 40), 255).save(file)
    elif kind == "empty class":
        draw_letters(root)
        (root / "d").mkdir()
    elif kind == "small class":
        draw_letters(root)
        for file in sorted((root / "a").iterdir())[3:]:
            file.unlink()
    elif kind != "missing":
        draw_letters(root)
    return root


BAD_INPUTS = [
    ("missing", {}, DataError, "does not exist"),
    ("file", {}, DataError, "is a file, not a folder"),
    ("loose", {}, DataError, "has no class sub-folders"),
    ("one class", {}, DataError, "has one class folder ('a'); a labelled dataset needs at least two"),
    ("blank class", {}, DataError, "has no usable image"),
    ("empty class", {}, DataError, "holds no image file"),
    ("good", {"out": "{folder}/more"}, ConfigError, "is inside path="),
    ("good", {"out": "{tmp}"}, ConfigError, "holds path="),
    ("good", {"out": None}, ConfigError, "out=<new folder> is required"),
    ("good", {"per_class": 5}, ConfigError, "per_class=5 is below the 6 real images of class 'a'"),
    ("good", {"per_class": 0}, ConfigError, "per_class=0 must be a positive number"),
    ("good", {"per_class": -3}, ConfigError, "per_class=-3 must be a positive number"),
    ("good", {"per_class": "many"}, ConfigError, "per_class=many must be a positive number"),
    ("good", {"fmt": "csv"}, ConfigError, "format=csv is not an export format"),
    ("good", {"measure": "maybe"}, ConfigError, "measure=maybe must be auto"),
    ("good", {"dataset": {"image_size": 32}}, ConfigError, "makes [1, 28, 28] images but the dataset's are"),
    ("good", {"dataset": {"ink": "blue"}}, ConfigError, "dataset.ink=blue must be one of"),
    ("good", {"augmenter": "conditional"}, ConfigError, "is class-conditional on"),
    ("good", {"augmenter": "{tmp}/nowhere"}, CheckpointError, "is neither a shipped augmenter"),
    ("good", {"colour": "red"}, ConfigError, "colour is not a setting of the expand command"),
    ("small class", {"measure": True}, ConfigError, "measure=true needs at least 4 usable images"),
]


@pytest.mark.parametrize(("kind", "settings", "error", "message"), BAD_INPUTS, ids=lambda v: str(v)[:30])
def test_a_bad_input_is_one_clear_error_and_nothing_is_written(
    kind, settings, error, message, augmenter_run, tmp_path
):
    folder = _make(kind, tmp_path / "letters")
    before = snapshot(folder) if folder.is_dir() else None
    settings = {
        key: value.format(folder=folder, tmp=tmp_path) if isinstance(value, str) else value
        for key, value in {"out": str(tmp_path / "out"), "augmenter": str(augmenter_run), **settings}.items()
    }
    if settings["augmenter"] == "conditional":
        cfg = compose_config(
            [*FAST, "model=cgan_mlp", "model.generator.num_classes=10"], run_dir=tmp_path / "cgan"
        )
        settings["augmenter"] = str(write_untrained_run(cfg, tmp_path / "cgan"))
    with pytest.raises(error) as raised:
        expand_folder(folder, settings.pop("out"), **{**TINY, "cache_dir": tmp_path / "cache", **settings})
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()
    assert not list(tmp_path.glob(".out*"))
    if before is not None:
        assert snapshot(folder) == before


def test_measure_auto_expands_without_measuring_when_a_class_is_too_small(augmenter_run, tmp_path):
    folder = _make("small class", tmp_path / "letters")
    result = expand_toy(folder, tmp_path / "out", augmenter_run)
    assert result["report"] is None and result["class_counts"]["00_a"] == {"real": 3, "synthetic": 27}
    assert manifest_of(tmp_path / "out")["settings"]["measure"] is False


# -- interrupted and started again --------------------------------------------------------------------
class Interrupt:
    """fit_for_steps that raises KeyboardInterrupt (as Ctrl-C would) at its `at`-th call, counting calls."""

    def __init__(self, at: int | None) -> None:
        self.at, self.calls = at, 0
        self.fit_for_steps = measure.fit_for_steps

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return self.fit_for_steps(*args, **kwargs)


def test_an_interrupted_expansion_continues_with_its_finished_steps_and_ends_as_an_uninterrupted_one(
    expanded, augmenter_run, tmp_path, monkeypatch
):
    folder = draw_letters(tmp_path / "letters")  # the same images as the uninterrupted run's folder
    out = tmp_path / "out"
    interrupt = Interrupt(at=7)  # seed 0's 2 trials and 3 arms, then the second trial of seed 1
    monkeypatch.setattr(measure, "fit_for_steps", interrupt)
    with pytest.raises(KeyboardInterrupt):
        expand_toy(folder, out, augmenter_run)
    assert not out.exists() and not list(tmp_path.glob(".out*"))
    work = tmp_path / "out.partial"
    assert (work / "measure" / "seed_0.json").is_file()
    assert not (work / "measure" / "seed_1.json").exists()  # its tuning was not finished

    again = Interrupt(at=None)
    monkeypatch.setattr(measure, "fit_for_steps", again)
    result = expand_toy(folder, out, augmenter_run)
    assert again.calls == 5  # only seed 1: its 2 trials and 3 arms
    assert not work.exists()
    uninterrupted = expanded[1]["report"]
    assert (
        result["report"]["arms"] == uninterrupted["arms"]
        and result["report"]["gain"] == uninterrupted["gain"]
    )
    assert torch.equal(read_export(out).images, read_export(expanded[0]).images)


def test_an_interrupt_while_writing_leaves_no_out_and_keeps_the_generated_images(
    letters, augmenter_run, tmp_path, monkeypatch
):
    out = tmp_path / "out"

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(expand_writing, "write_dataset", stop)
    with pytest.raises(KeyboardInterrupt):
        expand_toy(letters, out, augmenter_run)
    assert not out.exists() and not list(tmp_path.glob(".out*"))
    assert (tmp_path / "out.partial" / "synthetic.pt").is_file()
    monkeypatch.undo()
    # Started again, it neither trains nor generates: every step is stored.
    monkeypatch.setattr(measure, "fit_for_steps", stop)
    monkeypatch.setattr("handwriting_gan.augmenter.Augmenter.vary", stop)
    result = expand_toy(letters, out, augmenter_run)
    assert result["num_synthetic"] == 162 and manifest_of(out)["num_samples_kept"] == 180


def test_other_arguments_refuse_to_continue_an_interrupted_expansion(
    letters, augmenter_run, tmp_path, monkeypatch
):
    out = tmp_path / "out"
    monkeypatch.setattr(measure, "fit_for_steps", Interrupt(at=2))
    with pytest.raises(KeyboardInterrupt):
        expand_toy(letters, out, augmenter_run)
    with pytest.raises(
        ConfigError, match=r"other arguments \(per_class: None then, 20 now\).*remove .*out\.partial"
    ):
        expand_toy(letters, out, augmenter_run, per_class=20)
    assert not out.exists() and (tmp_path / "out.partial" / "arguments.json").is_file()


# -- the config -------------------------------------------------------------------------------------
def test_the_defaults_are_the_folder_datasets_and_the_studys_at_a_smaller_cost():
    cfg = compose_config([], config_name="expand")
    folder = compose_config(["dataset=folder"]).dataset
    assert {key: folder[key] for key in cfg.dataset} == OmegaConf.to_container(cfg.dataset)
    study = compose_config([], config_name="study")
    ours, theirs = (OmegaConf.to_container(c.arm_classifier) for c in (cfg, study))
    assert ours.pop("steps") < theirs.pop("steps") and ours == theirs
    ours, theirs = (OmegaConf.to_container(c.classical_search) for c in (cfg, study))
    cheaper = ("trials", "steps")
    assert all(ours.pop(key) <= theirs.pop(key) for key in cheaper) and ours == theirs
    assert cfg.augmenter == "omniglot" and cfg.measure == "auto" and cfg.per_class is None


# -- the command line and the notebook -----------------------------------------------------------------
def test_the_command_expands_a_folder_prints_the_report_and_refuses_to_overwrite(
    letters, augmenter_run, tmp_path, cli
):
    args = [f"path={letters}", "out=out", f"augmenter={augmenter_run}", f"paths.cache_dir={tmp_path / 'c'}"]
    done = cli([*args, *TINY_CLI], module="handwriting_gan.expand")
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stderr.splitlines()
    assert (
        lines[0]
        == f"Expanding {letters} into out (finished steps are kept in out.partial until it is complete)"
    )
    assert "Skipped 2 of 20 images" in done.stderr and "Total time" in lines[-1]
    assert "Traceback" not in done.stderr and "GPU available" not in done.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["sentence"] in done.stdout and "| (a) real |" in done.stdout
    again = cli([*args, *TINY_CLI], module="handwriting_gan.expand")
    assert again.returncode == 3 and again.stderr.count("error: ") == 1
    assert "out=out already exists" in again.stderr and "Traceback" not in again.stderr
    missing = cli(["path=nowhere", "out=x"], module="handwriting_gan.expand")
    assert missing.returncode == 4 and "path=nowhere does not exist" in missing.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.process
def test_the_notebook_cell_expands_a_folder_from_python(letters, augmenter_run, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(
        Path(__file__).parent.parent / "notebooks" / "expand_a_dataset.ipynb", as_version=4
    )
    notebook.cells = [cell for cell in notebook.cells if "expand-folder" in cell.metadata.get("tags", [])]
    assert [cell.cell_type for cell in notebook.cells] == ["markdown", "code"]
    shutil.copytree(letters, tmp_path / "mine")
    monkeypatch.setenv("HWGAN_EXPAND_FOLDER", str(tmp_path / "mine"))
    monkeypatch.setenv("HWGAN_AUGMENTER", str(augmenter_run))
    monkeypatch.setenv("HWGAN_EXPAND_SETTINGS", json.dumps({**TINY, "cache_dir": str(tmp_path / "cache")}))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    printed = "".join(
        output.get("text", "") for output in notebook.cells[1].outputs if output.output_type == "stream"
    )
    assert f"{tmp_path / 'mine_expanded'}: 18 real + 162 synthetic images" in printed
    assert any("image/png" in output.get("data", {}) for output in notebook.cells[1].outputs)
    assert (tmp_path / "mine_expanded" / "report.md").is_file()
