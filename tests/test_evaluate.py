"""`python -m handwriting_gan.evaluate`: metrics of a finished run, written and printed; clear errors."""

import json
import shutil
from pathlib import Path

import pytest

from handwriting_gan.config import compose_config, instantiate
from handwriting_gan.errors import CheckpointError, ConfigError
from handwriting_gan.evaluate import evaluate
from handwriting_gan.models.classifier_file import load_classifier
from tests_support import FAST, TINY_CLASSIFIER, TOY_SEMI, train_in_process, write_untrained_run

REQUIRED = (
    "fd",
    "fd_floor",
    "kid",
    "precision",
    "recall",
    "density",
    "coverage",
    "class_entropy",
    "classifier_test_acc",
)


def evaluate_config(overrides: list[str]):
    return compose_config(overrides, config_name="evaluate")


@pytest.fixture
def untrained_run(compose, tmp_path) -> Path:
    """A run folder as training leaves it (config record and generator.pt), without the training."""
    cfg = compose([*FAST, f"paths.cache_dir={tmp_path / 'cache'}"], run_dir=tmp_path / "run")
    return write_untrained_run(cfg, tmp_path / "run")


def test_a_trained_run_gets_metrics_json_and_the_same_json_line(cli, tmp_path):
    trained = cli([*FAST, "hydra.run.dir=run"])
    assert trained.returncode == 0, trained.stderr
    record = (tmp_path / "run" / ".hydra" / "config.yaml").read_text()

    result = cli(["run_dir=run", "num_samples=64", *TINY_CLASSIFIER], module="handwriting_gan.evaluate")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    printed = json.loads(lines[0])
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == printed
    for key in REQUIRED:
        assert isinstance(printed[key], float), key
    assert printed["fd"] > 0 and printed["num_samples"] == 64 and printed["conditional"] is False
    assert "cas" not in printed and "label_agreement" not in printed  # the MLP GAN is unconditional
    assert sum(printed["class_histogram"].values()) == 64
    # The classifier went to the run's paths.cache_dir (cache/ under the working folder), and the
    # run's own record is untouched: no Hydra output folder, no rewritten .hydra/.
    assert Path(printed["classifier_file"]).parent == (tmp_path / "cache" / "classifiers").resolve()
    assert (tmp_path / "run" / ".hydra" / "config.yaml").read_text() == record
    assert not (tmp_path / "outputs").exists()
    assert "Training the domain classifier" in result.stderr


def test_evaluation_in_process_covers_every_metric_group(untrained_run, tmp_path):
    values = evaluate(evaluate_config([f"run_dir={untrained_run}", "num_samples=40", *TINY_CLASSIFIER]))
    for key in (*REQUIRED, "kid_std", "classes_covered", "memorization_ratio", "memorized_fraction"):
        assert key in values
    assert values["classifier_test_acc"] == 1.0
    assert values["fd"] > 3 * values["fd_floor"]  # an untrained generator draws noise
    assert json.loads((untrained_run / "metrics.json").read_text())["fd"] == values["fd"]
    classifier_file = Path(values["classifier_file"])
    assert classifier_file.is_relative_to(tmp_path / "cache")  # the run's paths.cache_dir
    trained_at = classifier_file.stat().st_mtime_ns

    again = evaluate(evaluate_config([f"run_dir={untrained_run}", "num_samples=40", *TINY_CLASSIFIER]))
    assert again == values  # same seed, same cached classifier: same numbers
    assert classifier_file.stat().st_mtime_ns == trained_at


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ([], ConfigError, "run_dir is required"),
        (["run_dir={tmp}/nowhere"], CheckpointError, "does not exist"),
        (["run_dir={tmp}"], CheckpointError, "not a run folder"),
        (["run_dir={run}", "num_samples=3"], ConfigError, "num_samples=3"),
        (["run_dir={run}", "num_samples=many"], ConfigError, "num_samples=many"),
        (["run_dir={run}", "metrics=[fid]"], ConfigError, "choose from"),
        (["run_dir={run}", "classifier.epochs=0"], ConfigError, "classifier.epochs=0"),
        (["run_dir={run}", "device=tpu"], ConfigError, "device=tpu"),
    ],
)
def test_bad_inputs_raise_errors_that_name_the_value(untrained_run, tmp_path, overrides, error, message):
    overrides = [o.format(tmp=tmp_path, run=untrained_run) for o in overrides]
    with pytest.raises(error, match=message):
        evaluate(evaluate_config(overrides))


def test_a_run_without_generator_file_says_it_has_not_finished(untrained_run):
    (untrained_run / "generator.pt").unlink()
    with pytest.raises(CheckpointError, match="has no generator.pt: the run has not finished"):
        evaluate(evaluate_config([f"run_dir={untrained_run}"]))


def test_the_command_prints_the_error_without_a_traceback_and_exits_non_zero(cli, untrained_run):
    shutil.rmtree(untrained_run / ".hydra")
    result = cli([f"run_dir={untrained_run}"], module="handwriting_gan.evaluate")
    assert result.returncode == CheckpointError.exit_code
    assert result.stderr.startswith("error: run_dir=") and "not a run folder" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_small_sample_and_test_split_are_flagged(untrained_run):
    values = evaluate(evaluate_config([f"run_dir={untrained_run}", "num_samples=40", *TINY_CLASSIFIER]))
    assert len(values["warnings"]) == 2
    assert "num_samples=40" in values["warnings"][0]
    assert f"the test split has {values['num_real_test']} images" in values["warnings"][1]
    assert values["against"] is None


def test_a_run_is_measured_against_another_dataset_with_its_classes(untrained_run):
    """The run trained on the 128-image fake set; against=fake measures it on the 512-image one (its own
    test split of 102 images) and writes metrics_fake.json beside the run's own metrics."""
    own = evaluate(evaluate_config([f"run_dir={untrained_run}", "num_samples=40", *TINY_CLASSIFIER]))
    other = evaluate(
        evaluate_config([f"run_dir={untrained_run}", "num_samples=40", "against=fake", *TINY_CLASSIFIER])
    )
    assert other["against"] == "fake" and other["num_real_test"] == 512 // 5 != own["num_real_test"]
    assert json.loads((untrained_run / "metrics_fake.json").read_text())["fd"] == other["fd"]
    assert json.loads((untrained_run / "metrics.json").read_text())["fd"] == own["fd"]
    with pytest.raises(ConfigError, match="against=chars74k: Chars74KDataModule has 62 classes"):
        evaluate(evaluate_config([f"run_dir={untrained_run}", "against=chars74k", *TINY_CLASSIFIER]))
    with pytest.raises(ConfigError, match="against=nope"):
        evaluate(evaluate_config([f"run_dir={untrained_run}", "against=nope", *TINY_CLASSIFIER]))


def test_a_semi_supervised_run_gets_its_classifier_scored_on_the_test_split(tmp_path):
    run = train_in_process(
        [*TOY_SEMI, "trainer.max_epochs=2", f"paths.cache_dir={tmp_path / 'cache'}"], tmp_path / "run"
    )
    values = evaluate(evaluate_config([f"run_dir={run}", "num_samples=40", *TINY_CLASSIFIER]))
    scored = values["discriminator_classifier"]
    assert scored["test_images"] == 64  # the fake dataset's test split: a fifth of its 320 images
    assert set(scored["per_class_accuracy"]) == {f"class_{i}" for i in range(4)}
    assert scored["test_error"] == pytest.approx(1 - scored["test_accuracy"])
    classifier = load_classifier(run / "classifier.pt")
    images, labels = instantiate(compose_config(TOY_SEMI, run_dir=tmp_path / "again").dataset).split(
        train=False
    )
    right = (classifier.label(images)[0] == labels).float().mean().item()
    assert scored["test_accuracy"] == pytest.approx(right, abs=1e-6)
    assert json.loads((run / "metrics.json").read_text())["discriminator_classifier"] == scored
