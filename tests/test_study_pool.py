"""`python -m handwriting_gan.study.pool`: a few labels per class and a pool. In process at toy size (the fake
dataset, a GAN of a few small batches, arm classifiers of 20 steps, 2 seeds): the table has every arm and a
column per seed, results.json every seed's arms, a second run trains nothing and prints the same table, a
stopped run continues its GAN from its checkpoint, and mistakes are one error that names the value; marked
`process`, the command line's exit code."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import statistics
from pathlib import Path
from types import SimpleNamespace

import pytest

import handwriting_gan.study.pool as pool_command
from handwriting_gan import shell
from handwriting_gan.augment.pool import POOL_ARMS, THRESHOLDS
from handwriting_gan.errors import ConfigError
from handwriting_gan.study.pool import (
    RESULTS_FILE,
    TABLE_FILE,
    check_pool_study,
    pool_study,
    pool_study_config,
)
from handwriting_gan.study.pool_report import BASE_ARMS, DISCRIMINATOR_TITLE, pool_table
from tests_support import TINY_CLASSIFIER, run_cli

# 4 classes of 80 training images on average, 3 labelled per class, the rest the pool; a GAN of 9 batches
# of 32 + 32 images with small networks; (b)'s tuning 2 settings of 5 steps.
TOY = [
    "dataset=fake",
    "dataset.size=320",
    "dataset.num_classes=4",
    # Noisier than the default: the arms then differ, as they do on real data.
    "dataset.noise=1.0",
    "labels_per_class=3",
    "seeds=2",
    "gan_batches=9",
    "gan_batch_size=32",
    'gan_overrides=["model.generator.hidden=[64,64]","model.discriminator.hidden=[128,64]"]',
    "arm_classifier.steps=20",
    "classical_search.trials=2",
    "classical_search.steps=5",
    "threads=1",
    "device=cpu",
    *TINY_CLASSIFIER,
]
ARM_KEYS = {"real", "classical", *(arm.key for arm in POOL_ARMS)}


def toy(root: Path, *extra: str) -> list[str]:
    """The toy command line with its folders under `root`."""
    return [
        *TOY,
        f"out={root / 'study'}",
        f"paths.data_dir={root / 'data'}",
        f"paths.cache_dir={root}",
        *extra,
    ]


def run(overrides: list[str]) -> SimpleNamespace:
    """The command in this process: its result, and what it wrote to stdout and stderr."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        result = pool_study(pool_study_config(overrides))
    return SimpleNamespace(**result, stdout=stdout.getvalue(), stderr=stderr.getvalue())


def rows(table: str) -> dict[str, list[str]]:
    """The table's cells by row title; "arm" holds the header."""
    lines = [line for line in table.splitlines() if line.startswith("|") and "---" not in line]
    cells = [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]
    return {row[0]: row[1:] for row in cells}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("pool_study")
    done = run(toy(root))
    done.root, done.out = root, root / "study"
    return done


def test_the_table_has_every_arm_with_a_column_per_seed_and_the_paired_comparisons(finished):
    table = rows(finished.table)
    assert table["arm"] == ["seed 0", "seed 1", "mean ± std"]
    titles = [arm.title for arm in (*BASE_ARMS, *POOL_ARMS)]
    assert [title for title in table if title in titles] == titles  # every arm, in the registry's order
    (oracle,) = [title for title in titles if "oracle" in title]
    assert oracle.startswith("(t)")
    stored = json.loads((finished.out / RESULTS_FILE).read_text())["seeds"]
    for arm in (*BASE_ARMS, *POOL_ARMS):
        seeds = [stored[seed]["arms"][arm.key] for seed in ("0", "1")]
        assert table[arm.title][:2] == [f"{100 * value:.1f}" for value in seeds]
        assert table[arm.title][2].startswith(f"{100 * statistics.fmean(seeds):.1f} ± ")
    assert table[DISCRIMINATOR_TITLE][:2] == [f"{100 * stored[s]['discriminator']:.1f}" for s in ("0", "1")]
    for letter, key in (("s", "self_training"), ("p", "pool_gan"), ("q", "pool_gan_synthetic")):
        arms = stored["0"]["arms"]
        gap = arms["pool_oracle"] - arms["classical"]
        share = "-" if gap == 0 else f"{100 * ((arms[key] - arms['classical']) / gap):.0f}%"
        assert table[f"({letter}): share of (t) − (b)"][0] == share
    assert "(r): share of (t) − (b)" in table
    for letter, key in (("p", "pool_gan"), ("q", "pool_gan_synthetic"), ("r", "pool_gan_self_training")):
        arms = stored["1"]["arms"]
        assert table[f"({letter}) − (s), points"][1] == f"{100 * (arms[key] - arms['self_training']):+.1f}"


def test_shares_of_the_oracles_gain_and_differences_from_self_training_are_paired_by_seed(tmp_path):
    plan = check_pool_study(pool_study_config(toy(tmp_path, "augmenter=null")))
    sizes = {"labelled": 12, "pool": 308, "test": 64}
    first = {"real": 0.5, "classical": 0.6, "self_training": 0.7, "pool_gan": 0.8}
    first |= {"pool_gan_self_training": 0.84, "pool_oracle": 1.0}
    # Seed 1's oracle gains nothing over (b): no share to give.
    second = {**first, "pool_oracle": 0.6}
    records = [
        {"seed": 0, **sizes, "arms": first, "discriminator": 0.9},
        {"seed": 1, **sizes, "arms": second, "discriminator": 0.7},
    ]
    table = rows(pool_table(plan, records))
    assert table["(s): share of (t) − (b)"] == ["25%", "-", "25%"]
    assert table["(p): share of (t) − (b)"] == ["50%", "-", "50%"]
    assert table["(r): share of (t) − (b)"] == ["60%", "-", "60%"]
    assert table["(p) − (s), points"] == ["+10.0", "+10.0", "+10.0 ± 0.0"]
    assert table["(r) − (s), points"] == ["+14.0", "+14.0", "+14.0 ± 0.0"]
    assert table[DISCRIMINATOR_TITLE] == ["90.0", "70.0", "80.0 ± 14.1"]
    # Without an augmenter there is no (q): its rows say so with dashes, and the heading says why.
    assert table["(q) (p) + a synthetic variation of every image"] == ["-", "-", "-"]
    assert table["(q) − (s), points"] == ["-", "-", "-"]
    assert "(q) left out" in pool_table(plan, records)


def test_stdout_is_the_table_table_md_holds_it_and_stderr_says_what_runs(finished):
    assert finished.stdout == finished.table + "\n"
    assert (finished.out / TABLE_FILE).read_text() == finished.table + "\n"
    assert finished.table.startswith("Test accuracy (%) on the test split of fake dataset.size=320")
    err = finished.stderr
    assert "Seed 0 (1 of 2 to run): 12 labelled, 308 in the pool, 64 test images" in err
    assert "semi-supervised GAN: 1 epoch of 9 batches of 32 labelled + 32 pool images" in err
    for arm in ("(a)", "(s)", "(p)", "(q)", "(r)", "(t)"):
        assert f"  {arm} " in err, arm
    assert "the GAN's discriminator:" in err


def test_results_json_holds_each_seeds_arms_choices_and_gan_run(finished):
    data = json.loads((finished.out / RESULTS_FILE).read_text())
    assert data["format"] == "handwriting_gan.study.pool"
    assert data["settings"]["labels_per_class"] == 3 and data["settings"]["gan_batches"] == 9
    assert set(data["seeds"]) == {"0", "1"}
    for seed, record in data["seeds"].items():
        assert set(record["arms"]) == ARM_KEYS
        assert all(0.0 <= value <= 1.0 for value in record["arms"].values())
        assert (record["labelled"], record["pool"], record["test"]) == (12, 308, 64)
        # Self-training's threshold and (b)'s setting were chosen on labelled images, among their trials.
        assert record["self_training"]["threshold"] in THRESHOLDS
        choice = record["classical_choice"]
        assert len(choice["trials"]) == 2 and choice["setting"] in [t["setting"] for t in choice["trials"]]
        assert 0.0 <= record["pool_gan_right"] <= 1.0
        gan = finished.out / "runs" / f"ssgan_seed_{seed}"
        assert (gan / "classifier.pt").is_file() and (gan / "checkpoints" / "last.ckpt").is_file()


def test_a_second_run_with_the_same_settings_trains_nothing_and_prints_the_same_table(finished, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("nothing should train or read data again")

    monkeypatch.setattr(pool_command, "train_gan", refuse)
    monkeypatch.setattr(pool_command, "read_seed", refuse)
    monkeypatch.setattr(pool_command, "fit_for_steps", refuse)
    again = run(toy(finished.root))
    assert again.table == finished.table and again.stdout == finished.stdout
    assert "2 seeds, 2 already finished" in again.stderr


def test_a_stopped_run_continues_its_gan_from_the_checkpoint_and_keeps_finished_seeds(finished, tmp_path):
    shutil.copytree(finished.out, tmp_path / "study")
    results = tmp_path / "study" / RESULTS_FILE
    data = json.loads(results.read_text())
    del data["seeds"]["1"]
    results.write_text(json.dumps(data))
    (tmp_path / "study" / "runs" / "ssgan_seed_1" / "classifier.pt").unlink()
    again = run(toy(tmp_path))
    assert "1 already finished" in again.stderr and "Seed 1 (1 of 1 to run)" in again.stderr
    assert "continued from its checkpoint" in again.stderr
    stored = json.loads(results.read_text())["seeds"]
    assert stored["0"] == data["seeds"]["0"]
    assert set(stored["1"]["arms"]) == ARM_KEYS


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["gan_batches=10"], r"other settings \(gan_batches: 9 there, 10 now\)"),
        (["labels_per_class=4"], r"other settings \(labels_per_class: 3 there, 4 now\)"),
    ],
)
def test_other_settings_against_stored_results_are_refused_naming_the_key(
    finished, tmp_path, overrides, message
):
    (tmp_path / "study").mkdir()
    shutil.copy(finished.out / RESULTS_FILE, tmp_path / "study" / RESULTS_FILE)
    stored = (tmp_path / "study" / RESULTS_FILE).read_bytes()
    with pytest.raises(ConfigError, match=message):
        pool_study(pool_study_config(toy(tmp_path, *overrides)))
    assert (tmp_path / "study" / RESULTS_FILE).read_bytes() == stored
    assert not (tmp_path / "study" / "runs").exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["labels_per_class=0"], r"labels_per_class=0 must be a whole number of at least 1"),
        (["labels_per_class=200"], r"labels_per_class=200 .*needs 200 training images of every class"),
        (["seeds=0"], r"seeds=0 must be a whole number of at least 1"),
        (["gan_batches=0"], r"gan_batches=0 must be a whole number of at least 1"),
        (["dataset.labels_per_class=5"], r"dataset.labels_per_class=5: .* set labels_per_class= instead"),
        (['gan_overrides=["seed=3"]'], r"gan_overrides holds seed=3, but seeds=N chooses the seeds"),
        (['gan_overrides=["trainer.max_epochz=3"]'], r"the pool study's GAN: .*trainer.max_epochz"),
        (["arm_classifier.steps=0"], r"arm_classifier.steps=0"),
        (["augmenter=nowhere"], r"augmenter=nowhere is neither a shipped augmenter"),
        (["device=tpu"], r"device=tpu"),
    ],
)
def test_bad_inputs_are_one_error_that_names_the_value_before_any_work(tmp_path, overrides, message):
    from handwriting_gan.errors import UserError

    with pytest.raises(UserError, match=message):
        pool_study(pool_study_config(toy(tmp_path, *overrides)))
    assert not (tmp_path / "study").exists()


def test_a_dataset_is_required(tmp_path):
    without = [o for o in toy(tmp_path) if not o.startswith("dataset")]
    with pytest.raises(ConfigError, match="dataset is required: e.g. python -m handwriting_gan.study.pool"):
        pool_study(pool_study_config(without))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bogus=1"], "error: bogus is not a known key of conf/pool_study.yaml."),
        (["dataset=nope"], "error: the configuration cannot be composed: In 'pool_study': Could not find "),
    ],
)
def test_the_command_line_refuses_an_unknown_key_or_dataset_in_one_line(monkeypatch, capsys, argv, message):
    monkeypatch.setattr("sys.argv", ["pool", *argv])
    with pytest.raises(SystemExit) as caught:
        shell.command("pool_study", lambda cfg: pytest.fail("the task must not run"))()
    assert caught.value.code == ConfigError.exit_code
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(message)


@pytest.mark.process
def test_the_command_line_prints_a_bad_value_in_one_line_and_exits_with_the_config_code(tmp_path):
    args = ["dataset=fake", "labels_per_class=0", "threads=1", "device=cpu"]
    done = run_cli(args, cwd=tmp_path, module="handwriting_gan.study.pool")
    assert done.returncode == ConfigError.exit_code, done.stderr
    assert done.stderr.startswith("error: labels_per_class=0 must be a whole number of at least 1")
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert not (tmp_path / "outputs").exists()
