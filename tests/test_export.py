"""`python -m handwriting_gan.export`: a labeled synthetic dataset from a run, written whole or not at all."""

import csv
import gzip
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from torch import nn
from torchvision.datasets import ImageFolder
from torchvision.datasets.mnist import read_image_file, read_label_file

import handwriting_gan.models.generator_file as generator_file
from handwriting_gan.config import compose_config, instantiate
from handwriting_gan.data.exports import class_folders
from handwriting_gan.data.mnist import read_idx, read_idx_gz
from handwriting_gan.errors import CheckpointError, ConfigError
from handwriting_gan.export import export
from handwriting_gan.metrics.sampling import draw_samples
from handwriting_gan.models.generator_file import load_generator
from tests_support import FAST, TINY_CLASSIFIER, write_untrained_run


def export_config(overrides: list[str]):
    return compose_config([*TINY_CLASSIFIER, *overrides], config_name="export")


@pytest.fixture
def run_dir(compose, tmp_path) -> Path:
    """A run folder as training leaves it (config record and generator.pt), without the training."""
    cfg = compose([*FAST, f"paths.cache_dir={tmp_path / 'cache'}"], run_dir=tmp_path / "run")
    return write_untrained_run(cfg, tmp_path / "run")


def read_labels(out: Path) -> list[dict]:
    with open(out / "labels.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if ".partial-" in p.name or ".old-" in p.name]


def test_classifier_settings_equal_evaluates_so_the_cached_classifier_is_shared():
    exported = compose_config(["run_dir=x"], config_name="export").classifier
    evaluated = compose_config(["run_dir=x"], config_name="evaluate").classifier
    assert OmegaConf.to_container(exported) == OmegaConf.to_container(evaluated)


def test_class_folders_sort_in_label_order_and_never_collide_by_case():
    names = class_folders(["A", "a", "x/y", "..", ""])
    assert names == ["00_A", "01_a", "02_x_y", "03___", "04_unnamed"]
    assert len({n.lower() for n in names}) == len(names)
    many = class_folders([str(i) for i in range(120)])
    assert many[7] == "007_7" and sorted(many) == many


def test_the_export_is_an_image_folder_that_matches_labels_csv_and_export_json(run_dir):
    summary = export(export_config([f"run_dir={run_dir}", "num_samples=60", "seed=3"]))
    out = run_dir / "export"
    assert summary["out"] == str(out.resolve())
    record = json.loads((out / "export.json").read_text())
    assert {k: v for k, v in summary.items() if k != "out"} == record
    assert record["num_samples_requested"] == record["num_samples_kept"] == 60 and record["num_dropped"] == 0
    assert record["seed"] == 3 and record["min_confidence"] == 0.0 and record["conditional"] is False
    assert record["classifier_test_acc"] == 1.0 and record["package_version"]
    assert record["generator_file"] == str((run_dir / "generator.pt").resolve())

    rows = read_labels(out)
    assert len(rows) == 60
    on_disk = Counter(p.parent.name for p in out.glob("*/*.png"))
    assert sum(on_disk.values()) == 60
    assert Counter(row["file"].split("/")[0] for row in rows) == on_disk
    assert {k: v for k, v in record["class_counts"].items() if v} == dict(on_disk)
    assert list(record["class_counts"]) == [f"{i:02d}_class_{i}" for i in range(10)]
    for row in rows:
        assert row["file"].startswith(f"{int(row['label']):02d}_{row['class_name']}/")
        assert 0.0 < float(row["confidence"]) <= 1.0

    # ImageFolder reads it, and its class index is the exported label (every class has a folder).
    folder = ImageFolder(out, allow_empty=True)
    assert len(folder) == 60
    assert folder.class_to_idx == {name: i for i, name in enumerate(record["class_counts"])}
    by_file = {row["file"]: int(row["label"]) for row in rows}
    for path, label in folder.samples:
        assert by_file[str(Path(path).relative_to(out).as_posix())] == label

    # Each PNG is the generator's sample for this seed, pixel for pixel.
    generator, metadata = load_generator(run_dir / "generator.pt")
    images, _ = draw_samples(generator, 60, metadata["latent_dim"], seed=3)
    for row in rows:
        with Image.open(out / row["file"]) as image:
            assert image.size == (28, 28) and image.mode == "L"
            index = int(Path(row["file"]).stem)
            assert np.array_equal(np.asarray(image), images[index, 0].numpy())


def test_an_existing_export_is_refused_untouched_and_replaced_with_overwrite(run_dir, tmp_path):
    out = tmp_path / "synthetic"
    export(export_config([f"run_dir={run_dir}", "num_samples=20", f"out={out}"]))
    before = snapshot(out)
    with pytest.raises(ConfigError, match=f"out={out} already exists; pass overwrite=true"):
        export(export_config([f"run_dir={run_dir}", "num_samples=30", f"out={out}"]))
    assert snapshot(out) == before

    summary = export(export_config([f"run_dir={run_dir}", "num_samples=30", f"out={out}", "overwrite=true"]))
    assert summary["num_samples_kept"] == 30 and len(read_labels(out)) == 30
    assert len(list(out.glob("*/*.png"))) == 30
    assert leftovers(tmp_path) == []


def test_the_same_seed_gives_byte_identical_exports(run_dir, tmp_path):
    for name in ("first", "second"):
        export(export_config([f"run_dir={run_dir}", "num_samples=25", f"out={tmp_path / name}", "seed=7"]))
    first, second = snapshot(tmp_path / "first"), snapshot(tmp_path / "second")
    assert {k: v for k, v in first.items() if k != "export.json"} == {
        k: v for k, v in second.items() if k != "export.json"
    }


@pytest.mark.parametrize("existing", [False, True])
def test_a_failure_while_writing_leaves_no_partial_folder_and_the_old_export_intact(
    run_dir, tmp_path, monkeypatch, existing
):
    out = tmp_path / "synthetic"
    if existing:
        export(export_config([f"run_dir={run_dir}", "num_samples=10", f"out={out}"]))
    before = snapshot(out) if existing else None
    save = Image.Image.save
    calls = []

    def failing_save(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise OSError(28, "No space left on device")
        return save(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(OSError, match="No space left"):
        export(export_config([f"run_dir={run_dir}", "num_samples=20", f"out={out}", "overwrite=true"]))
    assert len(calls) == 5
    assert leftovers(tmp_path) == []
    if existing:
        assert snapshot(out) == before
    else:
        assert not out.exists()


def test_min_confidence_drops_the_images_the_classifier_doubts(run_dir, tmp_path):
    export(export_config([f"run_dir={run_dir}", "num_samples=40", f"out={tmp_path / 'all'}"]))
    everything = read_labels(tmp_path / "all")
    values = sorted({float(row["confidence"]) for row in everything})
    # A threshold between two distinct confidences near the median, clear of the CSV's rounding.
    cut = next(i for i in range(len(values) // 2, len(values) - 1) if values[i + 1] - values[i] > 1e-5)
    threshold = (values[cut] + values[cut + 1]) / 2
    expected = [row for row in everything if float(row["confidence"]) >= threshold]
    assert 0 < len(expected) < 40

    out = tmp_path / "confident"
    summary = export(
        export_config([f"run_dir={run_dir}", "num_samples=40", f"out={out}", f"min_confidence={threshold}"])
    )
    record = json.loads((out / "export.json").read_text())
    assert record["min_confidence"] == threshold and record["num_samples_requested"] == 40
    assert record["num_samples_kept"] == len(expected) == summary["num_samples_kept"]
    assert record["num_dropped"] == 40 - len(expected)
    assert read_labels(out) == expected  # the same images, same names and labels, minus the doubtful
    assert len(list(out.glob("*/*.png"))) == len(expected)


class ConditionalGenerator(nn.Module):
    """A class-conditional stand-in: the untrained MLP generator, called as generator(z, labels)."""

    def __init__(self, generator: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.generator, self.num_classes = generator, num_classes

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.generator(z)


def test_a_conditional_generators_images_keep_the_class_they_were_asked_for(run_dir, tmp_path, monkeypatch):
    generator, metadata = load_generator(run_dir / "generator.pt")
    conditional = ConditionalGenerator(generator, 10)
    monkeypatch.setattr(generator_file, "load_generator", lambda path: (conditional, metadata))
    summary = export(export_config([f"run_dir={run_dir}", "num_samples=30", f"out={tmp_path / 'c'}"]))
    assert summary["conditional"] is True
    _, requested = draw_samples(conditional, 30, metadata["latent_dim"], seed=0)
    for row in read_labels(tmp_path / "c"):
        assert int(row["label"]) == int(requested[int(Path(row["file"]).stem)])
    assert set(summary["class_counts"].values()) == {3}  # every class asked for equally often


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ([], ConfigError, "run_dir is required"),
        (["run_dir={tmp}/nowhere"], CheckpointError, "does not exist"),
        (["run_dir={run}", "num_samples=0"], ConfigError, "num_samples=0"),
        (["run_dir={run}", "min_confidence=1.0"], ConfigError, r"min_confidence=1.0 must be .* \[0, 1\)"),
        (["run_dir={run}", "min_confidence=-0.1"], ConfigError, "min_confidence=-0.1"),
        (["run_dir={run}", "overwrite=maybe"], ConfigError, "overwrite=maybe"),
        (["run_dir={run}", "out={run}", "overwrite=true"], ConfigError, "holds the run folder"),
        (["run_dir={run}", "out={run}/.hydra", "overwrite=true"], ConfigError, "is not an export"),
    ],
)
def test_bad_inputs_raise_errors_that_name_the_value(run_dir, tmp_path, overrides, error, message):
    overrides = [o.format(tmp=tmp_path, run=run_dir) for o in overrides]
    with pytest.raises(error, match=message):
        export(export_config(overrides))
    assert not (run_dir / "export").exists() and leftovers(run_dir) == []


def test_the_command_prints_one_json_line_and_refuses_to_overwrite_with_exit_code_3(cli, run_dir):
    ok = cli([f"run_dir={run_dir}", "num_samples=12", *TINY_CLASSIFIER], module="handwriting_gan.export")
    assert ok.returncode == 0, ok.stderr
    lines = ok.stdout.strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["num_samples_kept"] == 12
    before = snapshot(run_dir / "export")

    refused = cli([f"run_dir={run_dir}", "num_samples=12"], module="handwriting_gan.export")
    assert refused.returncode == ConfigError.exit_code == 3
    assert f"out={run_dir / 'export'} already exists" in refused.stderr and "overwrite=true" in refused.stderr
    assert "Traceback" not in refused.stderr and refused.stdout == ""
    assert snapshot(run_dir / "export") == before


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["run_dir={run}", "num_samples=0"], ConfigError.exit_code, "num_samples=0"),
        (["run_dir={tmp}/nowhere"], CheckpointError.exit_code, "does not exist"),
        (
            ["run_dir={run}", "format=parquet"],
            ConfigError.exit_code,
            "format=parquet is not an export format",
        ),
    ],
)
def test_the_command_reports_bad_inputs_without_a_traceback(cli, run_dir, tmp_path, args, code, message):
    result = cli([a.format(run=run_dir, tmp=tmp_path) for a in args], module="handwriting_gan.export")
    assert result.returncode == code
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_a_run_without_generator_file_says_it_has_not_finished(run_dir):
    (run_dir / "generator.pt").unlink()
    with pytest.raises(CheckpointError, match="has no generator.pt: the run has not finished"):
        export(export_config([f"run_dir={run_dir}"]))


# -- formats, per_class, metrics -----------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """An unconditional and a class-conditional run (untrained, fake data) sharing one classifier cache,
    so the module trains the domain classifier once."""
    root = tmp_path_factory.mktemp("runs")
    made = {}
    for name, model in [("plain", []), ("conditional", ["model=cgan_mlp", "model.generator.num_classes=10"])]:
        cfg = compose_config([*FAST, *model, f"paths.cache_dir={root / 'cache'}"], run_dir=root / name)
        made[name] = write_untrained_run(cfg, root / name)
    return made


def fake_class_names() -> list[str]:
    return [f"class_{i}" for i in range(10)]


def test_npz_holds_the_images_labels_and_class_names_numpy_reads(runs, tmp_path):
    run = runs["plain"]
    export(export_config([f"run_dir={run}", "num_samples=40", "seed=2", f"out={tmp_path / 'png'}"]))
    summary = export(
        export_config([f"run_dir={run}", "num_samples=40", "seed=2", "format=npz", f"out={tmp_path / 'n'}"])
    )
    assert sorted(p.name for p in (tmp_path / "n").iterdir()) == ["dataset.npz", "export.json"]
    record = json.loads((tmp_path / "n" / "export.json").read_text())
    assert record["format"] == "npz" and record["class_names"] == fake_class_names()
    assert {k: v for k, v in summary.items() if k != "out"} == record

    with np.load(tmp_path / "n" / "dataset.npz", allow_pickle=False) as arrays:
        images, labels, names = arrays["images"], arrays["labels"], arrays["class_names"]
    assert images.shape == (40, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (40,) and labels.dtype == np.int64
    assert names.tolist() == fake_class_names()
    generator, metadata = load_generator(run / "generator.pt")
    drawn, _ = draw_samples(generator, 40, metadata["latent_dim"], seed=2)
    assert np.array_equal(images, drawn[:, 0].numpy())
    # The same draws and labels as the image-folder export of this seed.
    rows = read_labels(tmp_path / "png")
    assert [int(row["label"]) for row in rows] == labels.tolist()
    assert Counter(labels.tolist()) == Counter(
        {i: n for i, n in enumerate(record["class_counts"].values()) if n}
    )


def test_idx_files_read_back_with_torchvision_and_the_projects_mnist_reader(runs, tmp_path):
    run, out = runs["plain"], tmp_path / "idx"
    export(export_config([f"run_dir={run}", "num_samples=30", "format=idx", f"out={out}"]))
    assert sorted(p.name for p in out.iterdir()) == [
        "export.json",
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
    ]
    images = read_idx_gz(out / "train-images-idx3-ubyte.gz")
    labels = read_idx(out / "train-labels-idx1-ubyte.gz")
    assert images.shape == (30, 28, 28) and labels.shape == (30,)

    # torchvision's readers open the file as is, so they read the IDX files MNIST's archive unpacks to.
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        with gzip.open(out / f"{name}.gz") as packed:
            (tmp_path / name).write_bytes(packed.read())
    assert torch.equal(read_image_file(str(tmp_path / "train-images-idx3-ubyte")), torch.from_numpy(images))
    assert read_label_file(str(tmp_path / "train-labels-idx1-ubyte")).tolist() == labels.tolist()

    generator, metadata = load_generator(run / "generator.pt")
    drawn, _ = draw_samples(generator, 30, metadata["latent_dim"], seed=0)
    assert np.array_equal(images, drawn[:, 0].numpy())
    record = json.loads((out / "export.json").read_text())
    assert record["format"] == "idx" and record["num_samples_kept"] == 30
    assert np.bincount(labels, minlength=10).tolist() == list(record["class_counts"].values())


def test_per_class_gives_exactly_that_many_of_each_class_from_a_conditional_generator(runs, tmp_path):
    run = runs["conditional"]
    for fmt in ("npz", "imagefolder"):
        out = tmp_path / fmt
        summary = export(
            export_config([f"run_dir={run}", "per_class=4", f"format={fmt}", f"out={out}", "seed=5"])
        )
        assert summary["conditional"] is True and summary["per_class"] == 4
        assert list(summary["class_counts"].values()) == [4] * 10
        assert summary["num_samples_requested"] == summary["num_samples_kept"] == 40
    with np.load(tmp_path / "npz" / "dataset.npz") as arrays:
        assert np.bincount(arrays["labels"]).tolist() == [4] * 10
    assert Counter(p.parent.name for p in (tmp_path / "imagefolder").glob("*/*.png")) == {
        name: 4 for name in class_folders(fake_class_names())
    }


class PrototypeGenerator(nn.Module):
    """An unconditional stand-in that draws the fake dataset's class prototypes, one of `classes` per
    sample, picked by which equal-probability bin of N(0, 1) the noise's first value falls in."""

    def __init__(self, prototypes: torch.Tensor, classes: list[int]) -> None:
        super().__init__()
        self.register_buffer("prototypes", prototypes * 2 - 1)
        self.classes = torch.tensor(classes)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        bins = (torch.special.ndtr(z[:, 0]) * len(self.classes)).long().clamp(max=len(self.classes) - 1)
        return self.prototypes[self.classes[bins]]


def use_prototype_generator(run: Path, monkeypatch, classes: list[int]) -> torch.Tensor:
    """Make export load a PrototypeGenerator for `run`; returns the prototypes as uint8 images."""
    cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
    prototypes = instantiate(cfg.dataset).prototypes()
    _, metadata = load_generator(run / "generator.pt")
    stand_in = PrototypeGenerator(prototypes, classes)
    monkeypatch.setattr(generator_file, "load_generator", lambda path: (stand_in, metadata))
    return (prototypes * 255).round().to(torch.uint8)


def test_per_class_draws_from_an_unconditional_generator_until_every_class_is_full(
    runs, tmp_path, monkeypatch
):
    prototypes = use_prototype_generator(runs["plain"], monkeypatch, list(range(10)))
    out = tmp_path / "balanced"
    summary = export(
        export_config(
            [f"run_dir={runs['plain']}", "per_class=6", "min_confidence=0.1", "format=npz", f"out={out}"]
        )
    )
    assert summary["conditional"] is False and list(summary["class_counts"].values()) == [6] * 10
    assert summary["num_drawn"] > 60  # 60 draws never land exactly 6 in each of 10 bins
    assert summary["num_dropped"] == summary["num_drawn"] - 60
    with np.load(out / "dataset.npz") as arrays:
        images, labels = torch.from_numpy(arrays["images"]), arrays["labels"]
    assert np.bincount(labels).tolist() == [6] * 10
    # Each image is the prototype of the class the classifier gave it.
    for image, label in zip(images, labels.tolist(), strict=True):
        assert torch.equal(image, prototypes[label, 0])


def test_per_class_names_the_classes_an_unconditional_generator_never_reached(runs, tmp_path, monkeypatch):
    use_prototype_generator(runs["plain"], monkeypatch, [0, 1, 2, 3, 4])
    out = tmp_path / "short"
    args = [f"run_dir={runs['plain']}", "per_class=3", "max_draws=120", f"out={out}"]
    unreached = ", ".join(f"'class_{i}' (0 of 3)" for i in range(5, 10))
    with pytest.raises(ConfigError) as error:
        export(export_config(args))
    message = str(error.value)
    assert "per_class=3 with min_confidence=0.0: after 120 draws (max_draws=120)" in message
    assert f"too few images of 5 of 10 classes: {unreached}." in message
    assert "Lower min_confidence or per_class, raise max_draws" in message
    assert not out.exists() and leftovers(tmp_path) == []


def test_per_class_with_a_confidence_no_image_reaches_names_every_class(runs, tmp_path):
    args = [f"run_dir={runs['plain']}", "per_class=2", "min_confidence=0.999999", "max_draws=40"]
    with pytest.raises(ConfigError, match=r"after 40 draws .* too few images of \d+ of 10 classes: 'class_"):
        export(export_config([*args, f"out={tmp_path / 'none'}"]))
    assert not (tmp_path / "none").exists()


def test_export_json_carries_the_runs_metrics_when_it_was_evaluated(runs, tmp_path):
    run = runs["plain"]
    without = export(export_config([f"run_dir={run}", "num_samples=5", f"out={tmp_path / 'a'}"]))
    assert without["metrics"] is None
    metrics = {"fd": 12.5, "classifier_acc": 0.75, "conditional": False}
    (run / "metrics.json").write_text(json.dumps(metrics) + "\n")
    try:
        export(export_config([f"run_dir={run}", "num_samples=5", "format=idx", f"out={tmp_path / 'b'}"]))
        assert json.loads((tmp_path / "b" / "export.json").read_text())["metrics"] == metrics
        (run / "metrics.json").write_text("{not json")
        with pytest.raises(CheckpointError, match=r"metrics.json cannot be read .*evaluate run_dir="):
            export(export_config([f"run_dir={run}", "num_samples=5", f"out={tmp_path / 'c'}"]))
        assert not (tmp_path / "c").exists()
    finally:
        (run / "metrics.json").unlink()


def test_idx_refuses_a_colour_run_before_drawing_anything(compose, tmp_path):
    cfg = compose([*FAST, "dataset.image_shape=[3,28,28]", f"paths.cache_dir={tmp_path / 'cache'}"])
    run = write_untrained_run(cfg, tmp_path / "colour")
    with pytest.raises(ConfigError, match=r"format=idx writes single-channel .* \[3, 28, 28\] .* format=npz"):
        export(export_config([f"run_dir={run}", "format=idx"]))
    assert not (tmp_path / "cache").exists() and not (run / "export").exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["format=csv"], "format=csv is not an export format; use one of imagefolder, npz, idx"),
        (["num_samples=10", "per_class=2"], "num_samples=10 and per_class=2 both set"),
        (["per_class=0"], "per_class=0 must be a whole number of at least 1"),
        (["per_class=5", "max_draws=20"], r"max_draws=20 is less than the per_class=5 x 10 classes = 50"),
    ],
)
def test_bad_format_and_size_options_fail_before_any_generation(run_dir, tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        export(export_config([f"run_dir={run_dir}", *overrides]))
    assert not (tmp_path / "cache").exists()  # no domain classifier was trained
    assert not (run_dir / "export").exists() and leftovers(run_dir) == []
