"""`python -m handwriting_gan.export`: a labeled synthetic dataset from a run, written whole or not at all."""

import csv
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

import handwriting_gan.models.generator_file as generator_file
from handwriting_gan.config import compose_config
from handwriting_gan.errors import CheckpointError, ConfigError
from handwriting_gan.export import class_folders, export
from handwriting_gan.metrics.sampling import draw_samples
from handwriting_gan.models.generator_file import load_generator
from tests_support import FAST, write_untrained_run

# A classifier that trains in under a second on the fake data.
TINY_CLASSIFIER = ["classifier.channels=[8,16]", "classifier.feature_dim=32", "classifier.batch_size=16"]


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
