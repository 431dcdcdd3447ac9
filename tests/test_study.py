"""`python -m handwriting_gan.study`: its settings, its arms registry, its results store, its table and
plot (from fabricated results) and the classifier its runs record, in this process; and, marked
`process`, the study end to end at toy size (three processes per GAN run), its resume and its errors."""

import contextlib
import csv
import dataclasses
import functools
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

import handwriting_gan.study.steps
from handwriting_gan.config import compose_config
from handwriting_gan.errors import ConfigError, DataError
from handwriting_gan.metrics.classifier import DEFAULT_SETTINGS, ClassifierSettings
from handwriting_gan.runs import RunFolder, classifier_for_run
from handwriting_gan.study import (
    ARMS,
    KINDS,
    RESULTS_FILE,
    Arm,
    Results,
    StudyStepError,
    TrainingSets,
    check_study,
    classical_copies,
    instantiate_classical,
    markdown_table,
    plot,
    run_command,
    study,
    study_config,
    summarize,
    write_outputs,
)
from handwriting_gan.study.steps import run_config
from tests_support import TOY_STUDY, run_cli

TOY = [*TOY_STUDY, "threads=1"]
FAKE_TEST_IMAGES = 512 // 5  # conf/dataset/fake.yaml: 512 training images, a fifth as many test ones
#: The default arms' columns: (d) and (e) say their filter is an oracle (the full-data classifier).
TITLES = [
    "(a) real",
    "(b) + tuned classical aug.",
    "(c) + synthetic",
    "(d) + synthetic, oracle filter",
    "(e) + classical + synthetic, oracle filter",
]
#: The arms a study trains unless `arms=[...]` says otherwise: (a)-(e), no augmenter.
DEFAULT_ARMS = ARMS[:5]


def toy(root: Path, *extra: str) -> list[str]:
    """The toy study's command line, with its folder and the GANs' classifier cache under `root`."""
    cache = root / "cache"
    return [*TOY, f"out={root / 'study'}", f'train_overrides=["paths.cache_dir={cache}"]', *extra]


def fabricated(plan, accuracies: dict[str, list[float]], kept: float = 0.25) -> Results:
    """A results store of `plan`: in the run (size, seed) of every size, arm `key` at accuracy
    accuracies[key][seed] (arms left out are not stored), FD / floor 4 + 2 seed and label agreement
    0.5 + seed / 10."""
    results = Results(plan.out / RESULTS_FILE, plan.identity())
    for size in plan.per_class:
        for seed in range(plan.seeds):
            run = results.run(size, seed)
            run["quality"] = {"fd_ratio": 4.0 + 2 * seed, "label_agreement": 0.5 + seed / 10}
            run["arms"] = {
                arm.key: {
                    "test_acc": accuracies[arm.key][seed],
                    **({"kept_fraction": kept} if arm.filtered else {}),
                }
                for arm in plan.arms
                if arm.key in accuracies
            }
    return results


def header_and_rows(table: str) -> tuple[list[str], list[list[str]]]:
    """The first table of `table`: its header and rows (the paired differences follow it)."""
    lines = []
    for line in table.splitlines():
        if line.startswith("|"):
            lines.append(line)
        elif lines:
            break
    cells = [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]
    return cells[0], cells[2:]


# -- settings --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["per_class=[0,10]"], r"per_class=\[0, 10\] holds \[0\]"),
        (["per_class=[4,4]"], "names a size twice"),
        (["per_class=[]"], "must be a list"),
        (["seeds=0"], "seeds=0 must be a whole number of at least 1"),
        (["filter_confidence=1.5"], r"filter_confidence=1.5 must be a probability in \[0, 1\)"),
        (["expansion=0"], "expansion=0"),
        (["arm_classifier.steps=0"], "arm_classifier.steps=0"),
        (["+arm_classifier.min_steps=5"], r"unknown keys \['min_steps'\].*min_steps follow from steps"),
        (['train_overrides=["seed=3"]'], "the study sets seed"),
        (['train_overrides=["model=mlp3"]'], "study's own model=<name>"),
        (['train_overrides=["trainer.max_epochs=5"]'], "gan_steps=null"),
        (['train_overrides=["classifier.feature_dim=8"]'], r"records the study's own domain classifier"),
        (['train_overrides=["trainer.max_epochz=5"]'], "a GAN run of the study: .*trainer.max_epochz"),
        (["per_class=[1000]"], "dataset.per_class=1000 asks for 1000 training images of every class"),
        (["quality.num_samples=5"], "quality.num_samples=5"),
        (["device=tpu"], "device=tpu"),
    ],
)
def test_bad_inputs_raise_errors_that_name_the_value_before_any_work(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        study(study_config(toy(tmp_path, *overrides)))
    assert not (tmp_path / "study").exists()


def test_a_study_without_a_dataset_says_how_to_choose_one(tmp_path):
    without = [o for o in toy(tmp_path) if not o.startswith("dataset=")]
    with pytest.raises(ConfigError, match="dataset is required .* dataset=mnist"):
        study(study_config(without))


def test_a_study_with_other_settings_in_the_same_folder_is_refused(tmp_path):
    plan = check_study(study_config(toy(tmp_path)))
    fabricated(plan, {arm.key: [0.5] for arm in ARMS}).save()
    stored = (plan.out / RESULTS_FILE).read_bytes()
    with pytest.raises(ConfigError, match=r"other settings \(expansion: 2 there, 3 now\)"):
        study(study_config(toy(tmp_path, "expansion=3")))
    assert (plan.out / RESULTS_FILE).read_bytes() == stored


def test_a_gan_run_records_the_studys_classifier_in_its_own_config(tmp_path):
    """The run's config names the study's domain classifier, so that evaluate and export of the run
    (without classifier.* of their own) use it and its cached copy."""
    plan = check_study(study_config(toy(tmp_path)))
    assert plan.classifier != DEFAULT_SETTINGS  # the toy's tiny classifier
    cfg, overrides = run_config(plan, 4, 0, tmp_path / "run", checked=True)
    assert ClassifierSettings.from_mapping(OmegaConf.to_container(cfg.classifier)) == plan.classifier
    assert "classifier.channels=[8,16]" in overrides and "classifier.feature_dim=32" in overrides
    # The overrides alone (what .hydra/overrides.yaml keeps, and resume= composes again) give it too.
    again = compose_config(overrides)
    assert ClassifierSettings.from_mapping(OmegaConf.to_container(again.classifier)) == plan.classifier


# -- the arms registry -----------------------------------------------------------------------------
def test_the_registry_lists_each_arm_once_with_the_keys_and_titles_existing_studies_hold():
    keys = ["real", "classical", "synthetic", "filtered", "both", "augmenter", "classical_augmenter"]
    assert [arm.key for arm in ARMS] == [
        *keys,
        "classical_augmenter_classical",
        "classical_augmenter_checked",
    ]
    assert [arm.title for arm in ARMS] == [
        *TITLES,
        "(f) + augmenter",
        "(g) + classical + augmenter",
        "(h) + classical + augmenter, then classical",
        "(i) + classical + augmenter, checked by (b)'s classifier",
    ]
    assert [arm.letter for arm in ARMS] == list("abcdefghi")
    assert [arm.key for arm in ARMS if arm.filtered] == ["filtered", "both"]
    assert [arm.key for arm in ARMS if arm.needs_gan] == ["synthetic", "filtered", "both"]
    assert [arm.key for arm in ARMS if arm.checked] == ["classical_augmenter_checked"]
    assert [arm.key for arm in ARMS if arm.needs_augmenter] == [
        *keys[5:],
        "classical_augmenter_classical",
        "classical_augmenter_checked",
    ]
    for arm in ARMS:
        assert set(arm.adds) <= set(KINDS), arm
    for kind in KINDS:  # each kind an arm can add is made (once) by TrainingSets
        assert isinstance(vars(TrainingSets).get(kind), functools.cached_property), kind


def fake_export(folder: Path, labels: list[int], confidences: list[float]) -> Path:
    """An npz export as the export command writes it: 28x28 images whose pixels are their index."""
    folder.mkdir(parents=True)
    images = np.stack([np.full((28, 28), i, dtype=np.uint8) for i in range(len(labels))])
    names = np.array([str(c) for c in range(3)])
    np.savez_compressed(
        folder / "dataset.npz",
        images=images,
        labels=np.array(labels, dtype=np.int64),
        class_names=names,
        confidences=np.array(confidences, dtype=np.float32),
    )
    record = {"format": "npz", "class_names": names.tolist(), "num_samples_kept": len(labels)}
    (folder / "export.json").write_text(json.dumps(record))
    return folder


def test_each_arm_trains_on_the_real_images_and_the_kinds_of_images_it_adds(tmp_path):
    plan = check_study(study_config(["dataset=fake", "device=cpu", "expansion=2", "filter_confidence=0.5"]))
    images = torch.zeros(3, 1, 28, 28, dtype=torch.uint8)
    images[:, :, 8:20, 8:20] = 255
    export = fake_export(tmp_path / "export", [0, 1, 2, 0, 1, 2], [0.9, 0.2, 0.6, 0.1, 0.5, 0.7])
    sets = TrainingSets(plan, images, torch.arange(3), export, seed=0, num_classes=3)
    extra = {arm.key: sets.extra(arm) for arm in DEFAULT_ARMS}

    assert len(extra["real"][0]) == 0
    assert extra["classical"][0].shape == (6, 1, 28, 28) and extra["classical"][1].tolist() == [0, 1, 2] * 2
    assert extra["synthetic"][1].tolist() == [0, 1, 2, 0, 1, 2]
    # (d): the synthetic images whose label the export's classifier gave at least filter_confidence.
    assert extra["filtered"][0][:, 0, 0, 0].tolist() == [0, 2, 4, 5]
    assert sets.kept_fraction == pytest.approx(4 / 6)
    # (e): (b)'s copies, then (d)'s synthetic images.
    assert torch.equal(extra["both"][0], torch.cat([extra["classical"][0], extra["filtered"][0]]))
    assert sets.describe(ARMS[0]) == "3 real"
    assert sets.describe(ARMS[4]) == "3 real + 6 augmented + 4 synthetic"


def test_an_export_without_confidences_says_how_to_export_again(tmp_path):
    plan = check_study(study_config(["dataset=fake", "device=cpu"]))
    export = fake_export(tmp_path / "export", [0, 1], [0.9, 0.9])
    with np.load(export / "dataset.npz") as arrays:
        kept = {k: arrays[k] for k in ("images", "labels", "class_names")}
    np.savez_compressed(export / "dataset.npz", **kept)
    sets = TrainingSets(
        plan, torch.zeros(2, 1, 28, 28, dtype=torch.uint8), torch.arange(2), export, seed=0, num_classes=2
    )
    with pytest.raises(DataError, match="holds no confidences .* run the study again"):
        sets.extra(ARMS[3])


# -- the table -------------------------------------------------------------------------------------
def test_the_table_gives_mean_and_std_over_seeds_in_percent(tmp_path):
    plan = check_study(study_config(["dataset=fake", "per_class=[10]", "seeds=2", f"out={tmp_path}"]))
    results = fabricated(plan, {arm.key: [0.80, 0.90] for arm in ARMS})
    rows = summarize(plan, results)
    assert rows[0]["real_mean"] == pytest.approx(0.85) and rows[0]["real_std"] == pytest.approx(
        0.0707, abs=1e-4
    )
    _, body = header_and_rows(markdown_table(plan, rows))
    line = "| " + " | ".join(body[-1]) + " |"
    assert line.startswith(
        "| 10 | 2 | 85.0 ± 7.1 | 85.0 ± 7.1 | 85.0 ± 7.1 | 85.0 ± 7.1 (kept 25%) | 85.0 ± 7.1 |"
    )
    assert line.endswith("| 5.0 ± 1.4 | 0.550 ± 0.071 |")


def test_the_table_names_its_columns_and_what_its_numbers_are_as_studies_always_wrote_them(tmp_path):
    plan = check_study(study_config(["dataset=fake", "per_class=[10,50]", "seeds=1", f"out={tmp_path}"]))
    rows = summarize(plan, fabricated(plan, {arm.key: [0.5] for arm in ARMS}))
    table = markdown_table(plan, rows)
    header, body = header_and_rows(table)
    assert header == [
        "per_class",
        "seeds",
        *TITLES[:3],
        *[f"{title} (≥ 0.9)" for title in TITLES[3:]],
        "FD / floor (2000 samples)",
        "label agreement",
    ]
    assert [row[:2] for row in body] == [["10", "1"], ["50", "1"]]
    assert table.splitlines()[0] == (
        "Test accuracy (%) on the full real test split, mean ± std over seeds. dataset=fake "
        "model=cgan_mlp augment=diffaugment, 2000 GAN steps, 10 extra images per real one in (c)-(d), "
        "tuned classical augmentation in (b), (e) adds both, classifiers trained 1000 steps each."
    )
    # Rows keep the keys of existing table.json and table.csv files.
    assert list(rows[0]) == [
        "per_class",
        "seeds",
        *[
            f"{key}_{part}"
            for key in ("real", "classical", "synthetic", "filtered", "both")
            for part in ("mean", "std")
        ],
        *[
            f"{key}_gain_{part}"
            for key in ("synthetic", "filtered", "both")
            for part in ("mean", "std", "seeds")
        ],
        "fd_ratio_mean",
        "fd_ratio_std",
        "label_agreement_mean",
        "label_agreement_std",
        "filtered_kept",
    ]


def test_a_size_with_missing_arms_counts_only_its_finished_seeds_and_shows_a_dash(tmp_path):
    plan = check_study(study_config(["dataset=fake", "per_class=[10]", "seeds=2", f"out={tmp_path}"]))
    results = fabricated(plan, {arm.key: [0.6, 0.8] for arm in ARMS if arm.key != "both"})
    (row,) = summarize(plan, results)
    assert row["seeds"] == 0 and row["both_mean"] is None and row["real_mean"] == pytest.approx(0.7)
    header, body = header_and_rows(markdown_table(plan, [row]))
    assert body[0][header.index(f"{TITLES[4]} (≥ 0.9)")] == "-"
    assert body[0][header.index("(a) real")] == "70.0 ± 14.1"


def test_a_new_arm_in_the_registry_is_one_more_column_of_the_table_its_files_and_its_plot(tmp_path):
    extra = Arm("h", "extra", "+ extra", ("synthetic",))
    base = check_study(study_config(["dataset=fake", "per_class=[10]", "seeds=2", f"out={tmp_path}"]))
    plan = dataclasses.replace(base, arms=(*DEFAULT_ARMS, extra))
    assert plan.identity() == base.identity()  # the arms are no setting: a resumed study adds the new one
    accuracies = {arm.key: [0.5, 0.5] for arm in DEFAULT_ARMS} | {"extra": [0.6, 0.8]}
    rows = summarize(plan, fabricated(plan, accuracies))
    assert rows[0]["extra_mean"] == pytest.approx(0.7) and rows[0]["seeds"] == 2
    # Paired with (b) seed by seed: +10 and +30 points.
    assert rows[0]["extra_gain_seeds"] == pytest.approx([0.1, 0.3])

    table = markdown_table(plan, rows)
    header, body = header_and_rows(table)
    assert header[2:8] == [*TITLES[:3], *[f"{t} (≥ 0.9)" for t in TITLES[3:]], "(h) + extra"]
    assert body[0][header.index("(h) + extra")] == "70.0 ± 14.1"
    assert "extra images per real one in (c)-(d), (h)," in table
    assert "| 10 |" in table.split("Paired differences")[1] and "+20.0 ± 14.1 (+10.0, +30.0)" in table

    files = write_outputs(plan, rows, table)
    assert json.loads(Path(files["table.json"]).read_text())["arms"]["extra"] == "(h) + extra"
    with open(files["table.csv"], newline="") as handle:
        assert float(next(csv.DictReader(handle))["extra_mean"]) == pytest.approx(0.7)
    figure = plot(plan, rows)
    figure.draw_without_rendering()
    legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert legend == [*TITLES, "(h) + extra"]


def test_the_plot_names_every_arm_beside_the_axes(tmp_path):
    plan = check_study(study_config(["dataset=fake", "per_class=[10,50]", "seeds=2", f"out={tmp_path}"]))
    rows = summarize(plan, fabricated(plan, {arm.key: [0.5, 0.7] for arm in ARMS}))
    files = write_outputs(plan, rows, markdown_table(plan, rows))
    with Image.open(files["accuracy.png"]) as image:
        assert image.format == "PNG" and image.size[0] > 300
    figure = plot(plan, rows)
    figure.draw_without_rendering()
    axes = figure.axes[0]
    legend = axes.get_legend()
    assert [text.get_text() for text in legend.get_texts()] == TITLES
    assert not legend.get_window_extent().overlaps(axes.get_window_extent())


# -- classical augmentation ------------------------------------------------------------------------
def test_classical_augmentation_changes_images_but_keeps_labels_dtype_and_size():
    transform = instantiate_classical(check_study(study_config(["dataset=fake", "device=cpu"])))
    generator = torch.Generator().manual_seed(0)
    images = (torch.rand(6, 1, 28, 28, generator=generator) > 0.7).to(torch.uint8) * 255
    labels = torch.arange(6)

    augmented, augmented_labels = classical_copies(images, labels, transform, copies=3, seed=0)
    assert augmented.dtype == torch.uint8 and augmented.shape == (18, 1, 28, 28)
    assert augmented_labels.tolist() == labels.tolist() * 3  # copy k of image i is at k * 6 + i
    for copy in augmented.view(3, 6, 1, 28, 28):
        assert all(not torch.equal(a, b) for a, b in zip(copy, images, strict=True))
    assert not torch.equal(augmented[:6], augmented[6:12])  # each copy draws its own parameters
    assert torch.equal(classical_copies(images, labels, transform, 3, seed=0)[0], augmented)
    assert not torch.equal(classical_copies(images, labels, transform, 3, seed=1)[0], augmented)


def test_a_transform_that_changes_the_images_type_is_refused():
    from torchvision.transforms import v2

    images, labels = torch.zeros(2, 1, 8, 8, dtype=torch.uint8), torch.zeros(2, dtype=torch.int64)
    with pytest.raises(ConfigError, match="must keep their type and size"):
        classical_copies(images, labels, v2.ToDtype(torch.float32, scale=True), copies=1, seed=0)


# -- end to end, in processes ----------------------------------------------------------------------
def run_study(overrides: list[str]) -> tuple[dict, str]:
    """Run the study in this process; returns its result and the progress it wrote to stderr."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        result = study(study_config(overrides))
    return result, stderr.getvalue()


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, dict, str]:
    """A finished toy study: (its root folder, the study's result, its progress lines)."""
    root = tmp_path_factory.mktemp("toy_study")
    result, progress = run_study(toy(root))
    return root, result, progress


@pytest.mark.process
def test_the_study_writes_the_table_as_markdown_json_csv_and_a_plot(finished):
    root, result, progress = finished
    folder = root / "study"
    table = (folder / "table.md").read_text()
    assert table.strip() == result["table"]
    header = next(line for line in table.splitlines() if line.startswith("| per_class"))
    for title in TITLES:
        assert title in header
    assert "FD / floor (40 samples)" in header and "label agreement" in header
    _, body = header_and_rows(table)
    assert [row[0] for row in body] == ["4"]
    assert "Paired differences from (b) + tuned classical aug." in table

    rows = json.loads((folder / "table.json").read_text())["rows"]
    with open(folder / "table.csv", newline="") as handle:
        csv_rows = list(csv.DictReader(handle))
    assert [row["per_class"] for row in rows] == [4] and [r["per_class"] for r in csv_rows] == ["4"]
    for row, csv_row in zip(rows, csv_rows, strict=True):
        assert row["seeds"] == 1
        for arm in DEFAULT_ARMS:
            assert 0.0 <= row[f"{arm.key}_mean"] <= 1.0 and row[f"{arm.key}_std"] is None  # one seed
            assert float(csv_row[f"{arm.key}_mean"]) == pytest.approx(row[f"{arm.key}_mean"])
        assert row["fd_ratio_mean"] > 1.0  # three GAN steps are far from the real images
        assert 0.0 <= row["label_agreement_mean"] <= 1.0  # cgan_mlp is class-conditional
    with Image.open(folder / "accuracy.png") as image:
        assert image.format == "PNG" and image.size[0] > 300

    # One line per step, counted, saying what it does.
    lines = [line for line in progress.splitlines() if line.startswith("[")]
    # The GAN, its metrics, its export, the tuning of (b), then the five arms.
    assert len(lines) == 9 and lines[0].startswith("[1/9] per_class=4 seed=0: training the GAN")
    assert "(model=cgan_mlp, 3 steps)" in lines[0] and lines[-1].startswith("[9/9] per_class=4 seed=0: (e)")
    assert "tuning classical augmentation (2 settings" in lines[3]
    assert re.search(r"on 40 real \+ \d+ augmented \+ \d+ synthetic images$", lines[-1])


@pytest.mark.process
def test_each_run_is_a_run_folder_with_its_export_and_each_arm_its_training_set(finished):
    root, _, _ = finished
    results = json.loads((root / "study" / "results.json").read_text())
    assert sorted(results["runs"]) == ["pc4_seed0"]
    for per_class in (4,):
        run = root / "study" / "runs" / f"pc{per_class}_seed0"
        assert (run / "generator.pt").is_file() and (run / ".hydra" / "config.yaml").is_file()
        assert f"dataset.per_class={per_class}" in (run / ".hydra" / "overrides.yaml").read_text()
        export = json.loads((run / "export" / "export.json").read_text())
        real = 10 * per_class  # fake has 10 classes
        assert export["format"] == "npz" and export["per_class"] == 2 * per_class
        assert export["num_samples_kept"] == 2 * real

        stored = results["runs"][f"pc{per_class}_seed0"]
        arms = stored["arms"]
        assert list(arms) == [arm.key for arm in DEFAULT_ARMS]
        assert {arm["real_images"] for arm in arms.values()} == {real}
        assert {arm["test_images"] for arm in arms.values()} == {FAKE_TEST_IMAGES}  # the full test split
        assert arms["real"]["extra_images"] == 0
        copies = stored["classical_choice"]["setting"]["copies"]  # the tuned setting's
        assert (
            arms["classical"]["extra_images"] == copies * real
            and arms["synthetic"]["extra_images"] == 2 * real
        )
        kept = arms["filtered"]["extra_images"]
        assert kept <= 2 * real and arms["filtered"]["kept_fraction"] == kept / (2 * real)
        # (e) = (b)'s copies and (d)'s synthetic images together.
        assert arms["both"]["extra_images"] == copies * real + kept
        assert arms["both"]["kept_fraction"] == arms["filtered"]["kept_fraction"]
        assert (
            stored["quality"]["num_samples"] == 40 and stored["quality"]["fd"] > stored["quality"]["fd_floor"]
        )


@pytest.mark.process
def test_running_it_again_resumes_without_training_anything(finished):
    root, result, _ = finished
    folder = root / "study"
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    results = (folder / "results.json").read_bytes()

    again = run_cli(toy(root), cwd=root, module="handwriting_gan.study")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == result["table"]
    assert "finished (stored in results.json)" in again.stderr
    assert "training the GAN" not in again.stderr and "training the classifier" not in again.stderr
    assert (folder / "results.json").read_bytes() == results
    runs = [p for p in before if "runs" in p.parts]
    assert runs and all(p.stat().st_mtime_ns == before[p] for p in runs)  # no run re-created or touched


def copy_and_rerun(finished, tmp_path, monkeypatch, damage) -> tuple[Path, dict, dict, str, list]:
    """Copy the finished study, `damage(folder, results)` it, run it again in this process; returns the
    folder, its results before and after, the progress and the commands it launched."""
    root, _, _ = finished
    shutil.copytree(root / "study", tmp_path / "study")
    folder = tmp_path / "study"
    results = json.loads((folder / "results.json").read_text())
    old = json.loads(json.dumps(results))
    damage(folder, results)
    (folder / "results.json").write_text(json.dumps(results))

    launched = []
    original = handwriting_gan.study.steps.run_command

    def counting(module, arguments):
        launched.append((module, list(arguments)))
        return original(module, arguments)

    monkeypatch.setattr(handwriting_gan.study.steps, "run_command", counting)
    overrides = toy(root)
    overrides[overrides.index(f"out={root / 'study'}")] = f"out={folder}"
    _, progress = run_study(overrides)
    return folder, old, json.loads((folder / "results.json").read_text()), progress, launched


@pytest.mark.process
def test_a_stopped_study_continues_its_gan_and_redoes_only_what_is_missing(finished, tmp_path, monkeypatch):
    """The GAN stopped after its last checkpoint (no generator.pt), the export and two arms are lost:
    the study continues the GAN from its checkpoint (`resume=`), exports again, and gets the same numbers."""

    def damage(folder, results):
        (folder / "runs" / "pc4_seed0" / "generator.pt").unlink()
        shutil.rmtree(folder / "runs" / "pc4_seed0" / "export")
        del results["runs"]["pc4_seed0"]["arms"]["synthetic"]
        del results["runs"]["pc4_seed0"]["arms"]["filtered"]

    folder, old, new, progress, launched = copy_and_rerun(finished, tmp_path, monkeypatch, damage)
    # The commands run as siblings: the training continued, then the export; nothing is measured again.
    run = (folder / "runs" / "pc4_seed0").resolve()
    assert [module for module, _ in launched] == ["handwriting_gan", "handwriting_gan.export"]
    assert launched[0][1] == [f"resume={run}"]
    assert f"run_dir={run}" in launched[1][1] and "format=npz" in launched[1][1]
    assert "per_class=4 seed=0: continuing the GAN from" in progress
    assert (run / "generator.pt").is_file() and (run / "export" / "export.json").is_file()
    assert new["runs"] == old["runs"]


@pytest.mark.process
def test_a_study_that_lost_an_arm_reuses_its_gan_and_export_and_runs_no_command(
    finished, tmp_path, monkeypatch
):
    def damage(folder, results):
        del results["runs"]["pc4_seed0"]["arms"]["real"]

    _, old, new, progress, launched = copy_and_rerun(finished, tmp_path, monkeypatch, damage)
    assert launched == []
    assert "per_class=4 seed=0: GAN already trained, reusing" in progress
    assert "synthetic set already exported, reusing" in progress
    assert new["runs"] == old["runs"]


@pytest.mark.process
def test_a_failing_command_names_itself_and_shows_the_end_of_its_output():
    # The study command itself: the quickest of the commands to start (no torch before its checks).
    with pytest.raises(StudyStepError) as raised:
        run_command("handwriting_gan.study", ["dataset=fake", "per_class=[0]"])
    message = str(raised.value)
    assert "`python -m handwriting_gan.study dataset=fake 'per_class=[0]'` failed (exit code 3)" in message
    assert "error: per_class=[0] holds [0]" in message


@pytest.mark.process
def test_the_command_prints_the_error_without_a_traceback_and_exits_non_zero(tmp_path):
    result = run_cli(["dataset=fake", "per_class=[0]"], cwd=tmp_path, module="handwriting_gan.study")
    assert result.returncode == ConfigError.exit_code
    assert result.stderr.startswith("error: per_class=[0] holds [0]") and "Traceback" not in result.stderr
    assert result.stdout == "" and not (tmp_path / "outputs").exists()


@pytest.mark.process
def test_a_study_run_records_the_studys_classifier_and_other_folders_none(finished, tmp_path):
    root, _, _ = finished
    plan = check_study(study_config(toy(root)))
    run = plan.run_folder(4, 0)
    assert run.domain_classifier() == plan.classifier  # the toy's tiny classifier, from the run's own config
    assert run.domain_classifier().channels != DEFAULT_SETTINGS.channels
    assert RunFolder(tmp_path / "runs" / "pc4_seed0").domain_classifier() is None  # not a run folder


@pytest.mark.process
def test_export_and_evaluate_of_a_study_run_use_the_studys_cached_classifier(finished, tmp_path):
    root, _, _ = finished
    plan = check_study(study_config(toy(root)))
    run = plan.run_folder(4, 0).path
    cached = sorted((root / "cache" / "classifiers").glob("*.pt"))
    assert len(cached) == 1  # the study's tiny classifier
    # No classifier.* given: the one the run's config records, not the default group.
    exported = run_cli(
        [f"run_dir={run}", "num_samples=20", "format=npz", f"out={tmp_path / 'export'}", "device=cpu"],
        cwd=tmp_path,
        module="handwriting_gan.export",
    )
    assert exported.returncode == 0, exported.stderr
    assert "classifier: the one the config of" in exported.stderr
    summary = json.loads(exported.stdout.strip().splitlines()[-1])
    assert Path(summary["classifier_file"]) == cached[0].resolve()
    measured = run_cli(
        [f"run_dir={run}", "num_samples=40", "metrics=[fd]", "device=cpu", "threads=1"],
        cwd=tmp_path,
        module="handwriting_gan.evaluate",
    )
    assert measured.returncode == 0, measured.stderr
    values = json.loads(measured.stdout.strip().splitlines()[-1])
    assert Path(values["classifier_file"]) == cached[0].resolve()
    assert sorted((root / "cache" / "classifiers").glob("*.pt")) == cached  # none trained


@pytest.mark.process
def test_a_classifier_asked_for_wins_over_the_studys(finished, tmp_path):
    root, _, _ = finished
    plan = check_study(study_config(toy(root)))
    run = plan.run_folder(4, 0).path
    asked = dataclasses.replace(DEFAULT_SETTINGS, feature_dim=64)
    assert classifier_for_run(run, asked, chosen=True) == asked
    assert classifier_for_run(run, asked, chosen=False) == plan.classifier
    assert classifier_for_run(tmp_path, DEFAULT_SETTINGS, chosen=False) == DEFAULT_SETTINGS  # not a run


# -- arms without a GAN: the augmenter and the tuned classical baseline ----------------------------
AUGMENTER_ARMS = (
    "arms=[real,classical,augmenter,classical_augmenter,classical_augmenter_classical,"
    "classical_augmenter_checked]"
)


@pytest.fixture(scope="module")
def tiny_augmenter(tmp_path_factory) -> Path:
    from tests_support import FAST, train_in_process

    tiny = [
        "model=dagan",
        "model.generator.channels=8",
        "model.discriminator.channels=8",
        "trainer.max_epochs=1",
    ]
    return train_in_process([*FAST, *tiny], tmp_path_factory.mktemp("augmenter") / "run")


def test_augmenter_arms_need_an_augmenter_and_arms_are_named_from_the_registry(tmp_path):
    with pytest.raises(
        ConfigError, match=r"\(f\) \+ augmenter, \(g\) .* need an augmenter: add augmenter=omniglot"
    ):
        check_study(study_config(toy(tmp_path, AUGMENTER_ARMS)))
    with pytest.raises(ConfigError, match=r"arms=\['real', 'magic'\] names \['magic'\]"):
        check_study(study_config(toy(tmp_path, "arms=[real,magic]")))
    from handwriting_gan.errors import CheckpointError

    with pytest.raises(CheckpointError, match="neither a shipped augmenter"):
        check_study(study_config(toy(tmp_path, AUGMENTER_ARMS, f"augmenter={tmp_path / 'none'}")))


def test_a_study_of_augmenter_arms_trains_no_gan_tunes_b_and_pairs_each_arm_with_it(
    tmp_path, tiny_augmenter, capsys
):
    overrides = toy(tmp_path, AUGMENTER_ARMS, f"augmenter={tiny_augmenter}", "seeds=2")
    result = study(study_config(overrides))
    out = tmp_path / "study"
    assert not (out / "runs").exists()  # no arm needs a GAN: none is trained
    stored = json.loads((out / RESULTS_FILE).read_text())["runs"]
    for seed in (0, 1):
        record = stored[f"pc4_seed{seed}"]
        assert set(record["arms"]) == {
            "real",
            "classical",
            "augmenter",
            "classical_augmenter",
            "classical_augmenter_classical",
            "classical_augmenter_checked",
        }
        choice = record["classical_choice"]
        assert len(choice["trials"]) == 2 and choice["setting"] in [t["setting"] for t in choice["trials"]]
        arms = record["arms"]
        # (f) adds expansion (2) variations per real image; (g) adds (b)'s tuned copies too.
        assert arms["augmenter"]["extra_images"] == 2 * arms["augmenter"]["real_images"]
        copies = choice["setting"]["copies"]
        assert arms["classical"]["extra_images"] == copies * arms["real"]["real_images"]
        assert arms["classical_augmenter"]["extra_images"] == (copies + 2) * arms["real"]["real_images"]
        # (h): as many, the variations each through (b)'s transform.
        assert (
            arms["classical_augmenter_classical"]["extra_images"]
            == arms["classical_augmenter"]["extra_images"]
        )
        # (i): (b)'s copies and the variations (b)'s classifier reads as their source's class.
        checked = arms["classical_augmenter_checked"]
        varied = arms["augmenter"]["extra_images"]
        assert checked["extra_images"] - arms["classical"]["extra_images"] == round(
            checked["kept_fraction"] * varied
        )
    (row,) = result["rows"]
    gains = [
        stored[f"pc4_seed{s}"]["arms"]["classical_augmenter"]["test_acc"]
        - stored[f"pc4_seed{s}"]["arms"]["classical"]["test_acc"]
        for s in (0, 1)
    ]
    assert row["classical_augmenter_gain_seeds"] == pytest.approx(gains)
    table = result["table"]
    assert "FD / floor" not in table and "Paired differences from (b)" in table
    assert f"augmenter={tiny_augmenter}" in table

    capsys.readouterr()
    study(study_config(overrides))  # everything is stored: nothing trains again
    err = capsys.readouterr().err
    assert "training the classifier" not in err and "tuning" not in err

    # Resumed with (b) stored, (i) trains its filter anew (not handed (b)'s): the same filter and result.
    results = json.loads((out / RESULTS_FILE).read_text())
    first = results["runs"]["pc4_seed0"]["arms"].pop("classical_augmenter_checked")
    (out / RESULTS_FILE).write_text(json.dumps(results))
    study(study_config(overrides))
    again = json.loads((out / RESULTS_FILE).read_text())["runs"]["pc4_seed0"]["arms"]
    assert again["classical_augmenter_checked"] == first
    assert f"(kept {100 * row['checked_kept']:.0f}%)" in table
