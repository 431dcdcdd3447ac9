"""`python -m handwriting_gan.expand unlabeled=<folder>`: a few labelled images per class and a pool of
unlabelled ones; the semi-supervised GAN labels the pool and `out` holds both, each image's origin marked
in export.json, labels.csv and the npz; review.png shows the least confident labels; bad pools are refused
before anything is written; an interrupted expansion continues from the GAN's checkpoint. In process with
a GAN of a few batches."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_expand import TINY, draw_letters

import handwriting_gan.expand.pool as pool_step
from handwriting_gan.callbacks.epoch_lines import EpochLines
from handwriting_gan.errors import ConfigError, DataError
from handwriting_gan.expand import expand_folder
from handwriting_gan.models.classifier_file import load_classifier

# A GAN of 12 batches of 8 + 8 images with small networks: seconds.
TINY_GAN = {
    "pool_labels": "gan",
    "pool_gan": {"batches": 12, "batch_size": 8},
    "threads": 1,
    "device": "cpu",
    "measure": False,
}


@pytest.fixture
def folders(tmp_path) -> tuple[Path, Path]:
    labelled = draw_letters(tmp_path / "labelled", per_class=3, junk=False)
    pool = draw_letters(tmp_path / "pool_tree", per_class=8, junk=True)
    # The pool in any layout: some images flat, the rest nested under other folder names.
    flat = tmp_path / "pool"
    for index, file in enumerate(sorted(pool.rglob("*.png"))):
        target = flat / ("deep/er" if index % 2 else "") / f"{index:03d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(file.read_bytes())
    # A copy of a labelled image; the pool's first three drawings of class a are copies too (the same
    # seeded strokes): 4 copies to drop, and 2 junk files to skip, leaving 21 pool images.
    (flat / "copy.png").write_bytes((labelled / "a" / "00.png").read_bytes())
    return labelled, flat


def expand(labelled, pool, out, **settings):
    return expand_folder(
        labelled, out, unlabeled=pool, cache_dir=out.parent / "cache", **{**TINY_GAN, **settings}
    )


def test_the_pool_is_labelled_and_every_image_says_where_it_came_from(folders, tmp_path, capsys, caplog):
    labelled, pool = folders
    with caplog.at_level("WARNING"):
        result = expand(labelled, pool, tmp_path / "out", fmt="npz")
    out = tmp_path / "out"
    console = capsys.readouterr().err
    assert (
        "Read 9 labelled images of 3 classes, 3 per class, and 21 usable pool images of 27 files" in console
    )
    # Each said once, though the GAN's own datamodule reads the pool again.
    assert caplog.text.count("Dropped 4 pool images byte-identical") == 1
    assert caplog.text.count("Skipped 2 of 27 images") == 1
    assert result["num_labelled"] == 9 and result["num_pseudo_labelled"] == 21
    assert {p.name for p in out.iterdir()} == {"dataset.npz", "export.json", "review.png", "classifier.pt"}
    assert not (tmp_path / "out.partial").exists()

    data = np.load(out / "dataset.npz")
    origin, pool_index = data["origin"], data["pool_index"]
    assert origin.tolist() == [0] * 9 + [1] * 21
    assert (pool_index[:9] == -1).all()
    files = sorted(p.relative_to(pool).as_posix() for p in pool.rglob("*.png"))
    record = json.loads((out / "export.json").read_text())
    pool_records = [r for r in record["images"] if r["origin"] == "pseudo-labelled"]
    assert [files[r["pool_index"]] for r in pool_records] == [r["pool_file"] for r in pool_records]
    assert [r["pool_index"] for r in pool_records] == pool_index[9:].tolist()
    # The copy of a labelled image and the two junk files are not in the pool part.
    assert not {"copy.png"} & {r["pool_file"] for r in pool_records}
    assert record["pool"]["files"] == 27 and record["pool"]["usable"] == 21
    assert all(0 < r["confidence"] <= 1 for r in pool_records)
    assert data["confidences"][9:].tolist() == pytest.approx(
        [r["confidence"] for r in pool_records], abs=1e-6
    )

    classifier = load_classifier(out / "classifier.pt")
    labels, _ = classifier.label(torch.from_numpy(data["images"][9:]).unsqueeze(1))
    assert labels.tolist() == data["labels"][9:].tolist()  # the labels are the classifier's
    with Image.open(out / "review.png") as review:
        assert review.size[1] >= 3 * 28  # one row per class


def test_labels_csv_marks_origins_and_min_confidence_drops_uncertain_pool_images(folders, tmp_path):
    labelled, pool = folders
    first = expand(labelled, pool, tmp_path / "all")
    rows = list(csv.DictReader((tmp_path / "all" / "labels.csv").open()))
    assert [r["origin"] for r in rows].count("labelled") == 9
    assert {r["origin"] for r in rows} == {"labelled", "pseudo-labelled"}
    assert all(r["pool_file"] for r in rows if r["origin"] == "pseudo-labelled")
    confidences = sorted(float(r["confidence"]) for r in rows if r["origin"] == "pseudo-labelled")
    threshold = confidences[len(confidences) // 2]
    kept = expand(labelled, pool, tmp_path / "confident", min_confidence=threshold)
    assert 0 < kept["num_pseudo_labelled"] < first["num_pseudo_labelled"]
    rows = list(csv.DictReader((tmp_path / "confident" / "labels.csv").open()))
    assert all(float(r["confidence"]) >= threshold - 1e-6 for r in rows if r["origin"] == "pseudo-labelled")


def test_pool_variations_add_synthetic_images_labelled_as_their_source(folders, tmp_path, capsys):
    labelled, pool = folders
    result = expand(labelled, pool, tmp_path / "out", fmt="npz", pool_variations=2)
    assert result["num_synthetic"] == 2 * (9 + 21)
    assert "9 labelled + 21 pseudo-labelled pool images + 60 synthetic variations" in capsys.readouterr().err
    data = np.load(tmp_path / "out" / "dataset.npz")
    assert data["origin"].tolist() == [0] * 9 + [1] * 21 + [2] * 60
    source = data["source"][30:]
    assert sorted(source.tolist()) == sorted(list(range(30)) * 2)  # each labelled and pool image twice
    assert (data["labels"][30:] == data["labels"][source]).all()
    assert data["confidences"][30:] == pytest.approx(data["confidences"][source])
    assert not (data["images"][30:] == data["images"][source]).all(axis=(1, 2)).any()  # new images
    record = json.loads((tmp_path / "out" / "export.json").read_text())
    assert record["settings"]["pool_variations"] == 2 and len(record["augmenter"]["sha256"]) == 24
    with pytest.raises(ConfigError, match="pool_variations"):
        expand(labelled, pool, tmp_path / "bad", pool_variations=-1)


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda p: None, DataError, "does not exist"),
        (lambda p: p.write_text("x"), DataError, "is a file"),
        (lambda p: p.mkdir(), DataError, "holds no image file"),
        (lambda p: (p.mkdir(), (p / "x.png").write_bytes(b"junk")), DataError, "has no usable image"),
    ],
)
def test_a_bad_pool_is_refused_and_nothing_is_written(folders, tmp_path, make, error, message):
    labelled, _ = folders
    bad = tmp_path / "bad"
    make(bad)
    with pytest.raises(error, match=message):
        expand(labelled, bad, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_the_labelled_folder_as_its_own_pool_is_refused(folders, tmp_path):
    labelled, _ = folders
    with pytest.raises(ConfigError, match="labelled folder itself"):
        expand(labelled, labelled, tmp_path / "out")


def test_a_pool_smaller_than_the_labelled_set_is_allowed_and_said(folders, tmp_path, capsys):
    labelled, pool = folders
    small = tmp_path / "small"
    small.mkdir()
    for file in sorted(pool.glob("0*.png"))[-2:]:  # not among the copies of labelled images
        (small / file.name).write_bytes(file.read_bytes())
    result = expand(labelled, small, tmp_path / "out")
    assert result["num_pseudo_labelled"] == 2
    assert "is smaller than the labelled set" in capsys.readouterr().err


def test_an_interrupted_expansion_continues_from_the_gans_checkpoint(folders, tmp_path, monkeypatch, capsys):
    labelled, pool = folders

    def interrupt(self, trainer, game):
        if trainer.current_epoch == 2:  # two epochs done, and checkpointed
            raise RuntimeError("interrupted")

    monkeypatch.setattr(EpochLines, "on_train_epoch_start", interrupt, raising=False)
    with pytest.raises(RuntimeError, match="interrupted"):
        expand(labelled, pool, tmp_path / "out")
    assert (tmp_path / "out.partial" / "ssgan" / "checkpoints" / "last.ckpt").is_file()
    assert not (tmp_path / "out").exists()
    monkeypatch.undo()
    capsys.readouterr()
    expand(labelled, pool, tmp_path / "out")
    console = capsys.readouterr().err
    assert "Continuing the expansion stored in" in console and "from its checkpoint" in console
    assert "epoch 3 of 6" in console and "epoch 1 of 6" not in console
    assert (tmp_path / "out" / "export.json").is_file() and not (tmp_path / "out.partial").exists()


def test_a_signal_during_the_pools_gan_says_to_run_the_same_command_again(
    folders, tmp_path, monkeypatch, capsys
):
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    labelled, pool = folders

    def stop(self, trainer, game):
        if trainer.current_epoch == 2:  # as Lightning raises it at the batch boundary after a SIGTERM
            raise SIGTERMException()

    monkeypatch.setattr(EpochLines, "on_train_epoch_start", stop, raising=False)
    with pytest.raises(SIGTERMException):
        expand(labelled, pool, tmp_path / "out")
    console = capsys.readouterr().err
    # The GAN is a step of expand, not a run a person resumes with `python -m handwriting_gan resume=`.
    assert "Stopped by a signal at the end of epoch 2" in console
    assert "Run the same command again" in console and "resume=" not in console
    assert (tmp_path / "out.partial" / "ssgan" / "checkpoints" / "last.ckpt").is_file()


def test_measure_true_compares_the_gans_labels_with_self_training_on_held_out_images(folders, tmp_path):
    labelled, pool = folders
    labelled = draw_letters(tmp_path / "labelled_6", per_class=6, junk=False)
    tiny = {key: TINY[key] for key in ("seeds", "arm_classifier", "classical_search", "classifier")}
    result = expand(labelled, pool, tmp_path / "out", measure=True, **tiny)
    report = result["report"]
    assert set(report["arms"]) == {
        "real",
        "classical",
        "self_training",
        "pool_gan",
        "pool_gan_synthetic",
        "pool_gan_self_training",
        "discriminator",
    }
    assert report["seeds"] == [0, 1] and report["held_out_images"][0] == 6  # a quarter of 6, per class
    assert len(report["gain"]["over_self_training"]["per_seed"]) == 2
    text = (tmp_path / "out" / "report.md").read_text()
    assert "(s) (b) + the pool labelled by self-training" in text and report["sentence"] in text
    record = json.loads((tmp_path / "out" / "export.json").read_text())
    assert record["measurement"]["sentence"] == report["sentence"]
    # One GAN per seed trained without its held-out images, and the expansion's own GAN: all removed.
    assert not (tmp_path / "out.partial").exists()


def test_pool_labels_self_training_labels_the_pool_without_a_gan(folders, tmp_path):
    labelled, pool = folders
    tiny = {key: TINY[key] for key in ("arm_classifier", "classical_search", "classifier")}
    result = expand(labelled, pool, tmp_path / "out", pool_labels="self_training", **tiny)
    out = tmp_path / "out"
    assert result["num_pseudo_labelled"] == 21
    assert not (out / "classifier.pt").exists()
    record = json.loads((out / "export.json").read_text())
    assert record["pool"]["labelled_by"].startswith("self-training")
    with pytest.raises(ConfigError, match="pool_labels=nobody"):
        expand(labelled, pool, tmp_path / "other", pool_labels="nobody")


def test_pool_labels_gan_self_training_starts_self_training_from_the_gans_labels(
    folders, tmp_path, capsys, monkeypatch
):
    import handwriting_gan.metrics.classifier as classifier_module

    labelled, pool = folders
    tiny = {key: TINY[key] for key in ("arm_classifier", "classical_search", "classifier")}
    gan, fitted = [], []
    label_pool, fit_for_steps = pool_step.label_pool, classifier_module.fit_for_steps

    def recording_label_pool(*args, **kwargs):
        labelled_pool = label_pool(*args, **kwargs)
        gan.append(labelled_pool.labels)
        return labelled_pool

    def recording_fit(images, labels, *args, **kwargs):
        fitted.append(labels.clone())
        return fit_for_steps(images, labels, *args, **kwargs)

    monkeypatch.setattr(pool_step, "label_pool", recording_label_pool)
    monkeypatch.setattr(classifier_module, "fit_for_steps", recording_fit)
    result = expand(labelled, pool, tmp_path / "out", pool_labels="gan_self_training", **tiny)
    assert result["num_pseudo_labelled"] == 21 and (tmp_path / "out" / "classifier.pt").is_file()
    assert "self-training, started from the GAN's labels" in capsys.readouterr().err
    record = json.loads((tmp_path / "out" / "export.json").read_text())
    assert record["pool"]["labelled_by"].startswith("self-training started from the semi-supervised GAN")
    # Self-training's first classifier learnt the labelled images, then the whole pool with the GAN's
    # labels (then (b)'s copies).
    assert any(len(labels) > 30 and torch.equal(labels[9:30], gan[0]) for labels in fitted)


def test_the_command_line_refuses_a_missing_pool_in_one_line_with_exit_code_4(folders, cli, tmp_path):
    labelled, _ = folders
    result = cli([f"path={labelled}", "unlabeled=nowhere", "out=out"], module="handwriting_gan.expand")
    assert result.returncode == 4
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "unlabeled=nowhere does not exist" in errors[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_the_pool_is_labelled_by_self_training_unless_asked_for_the_gan():
    from handwriting_gan.expand.settings import expand_config

    assert expand_config({}).pool_labels == "self_training"  # what measured best on average


def pool_record(seed: int, **arms: float) -> dict:
    return {"seed": seed, "held_out": 4, "train": 12, "self_training": {}, "discriminator": 0.5, "arms": arms}


def test_the_pool_report_counts_the_best_gan_arm_against_self_training_and_what_the_variations_add(
    tmp_path,
):
    from handwriting_gan.expand.report import pool_markdown, pool_summary

    records = [
        pool_record(0, real=0.5, classical=0.6, self_training=0.7, pool_gan=0.65, pool_gan_synthetic=0.75),
        pool_record(1, real=0.5, classical=0.6, self_training=0.7, pool_gan=0.68, pool_gan_synthetic=0.72),
    ]
    summary = pool_summary(records, tmp_path, 3)
    assert summary["gain"]["synthetic_over_pool"]["per_seed"] == pytest.approx([10.0, 4.0])
    assert summary["gain"]["over_self_training"]["per_seed"] == pytest.approx([-5.0, -2.0])
    # (q) is the GAN's best arm here: it is what the sentence sets against self-training.
    assert "(q), scored +3.5 points against self-training" in summary["sentence"]
    assert "beat self-training in 2 of 2 seeds" in summary["sentence"]
    assert "changed (p) by +7.0 points" in summary["sentence"]
    assert "| (q) − (p): what the variations add, points | +10.0 | +4.0 |" in pool_markdown(summary)
    # Records stored before (q) existed (a resumed work folder) report the arms they have.
    for record in records:
        del record["arms"]["pool_gan_synthetic"]
    older = pool_summary(records, tmp_path, 3)
    assert "pool_gan_synthetic" not in older["arms"] and set(older["gain"]) == {
        "over_self_training",
        "over_classical",
    }
    assert "(p), scored -3.5 points" in older["sentence"] and "changed (p)" not in older["sentence"]
