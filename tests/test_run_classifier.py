"""Evaluate and export measure and label a run with the domain classifier its config records (a study's run
records the study's), unless the command line chooses one with classifier.*, which wins."""

import logging
from pathlib import Path

import pytest

from handwriting_gan import shell
from handwriting_gan.config import compose_config
from handwriting_gan.errors import ConfigError
from handwriting_gan.evaluate import evaluate
from handwriting_gan.export import export
from handwriting_gan.metrics.classifier import DEFAULT_SETTINGS, ClassifierSettings
from handwriting_gan.runs import RunFolder, classifier_for_run
from tests_support import FAST, TINY_CLASSIFIER, write_untrained_run

#: Another tiny classifier, to ask for explicitly.
OTHER_TINY = [o for o in TINY_CLASSIFIER if not o.startswith("classifier.feature_dim=")] + [
    "classifier.feature_dim=16"
]


def tiny_settings(overrides: list[str]) -> ClassifierSettings:
    from omegaconf import OmegaConf

    return ClassifierSettings.from_mapping(OmegaConf.to_container(compose_config(overrides).classifier))


@pytest.fixture
def run_dir(compose, tmp_path) -> Path:
    """A run folder whose config records a tiny classifier (as a study's runs record the study's)."""
    cfg = compose(
        [*FAST, *TINY_CLASSIFIER, f"paths.cache_dir={tmp_path / 'cache'}"], run_dir=tmp_path / "run"
    )
    return write_untrained_run(cfg, tmp_path / "run")


def command_config(name: str, overrides: list[str]):
    """conf/<name>.yaml composed as the command line composes it, with Hydra's record of the overrides."""
    return compose_config(overrides, config_name=name, return_hydra_config=True)


def test_the_command_line_sets_the_classifier_only_with_classifier_overrides():
    assert not shell.sets_node(command_config("evaluate", ["run_dir=x", "num_samples=40"]), "classifier")
    assert shell.sets_node(command_config("evaluate", ["run_dir=x", "classifier.lr=0.01"]), "classifier")
    assert shell.sets_node(command_config("export", ["run_dir=x", "classifier=default"]), "classifier")
    # Composed without Hydra's record (a test, a notebook): what the caller composed is what it asked for.
    assert shell.sets_node(compose_config(["run_dir=x"], config_name="evaluate"), "classifier")


def test_a_running_command_knows_whether_its_command_line_chose_the_classifier(monkeypatch):
    seen = []

    def task(cfg):
        seen.append(shell.sets_node(cfg, "classifier"))

    for argv in (["run_dir=x"], ["run_dir=x", "classifier.max_shift=0"]):
        monkeypatch.setattr("sys.argv", ["hwgan-evaluate", *argv])
        shell.command("evaluate", task)()
    assert seen == [False, True]


def test_a_run_gets_the_classifier_its_config_records_unless_one_is_chosen(run_dir, tmp_path, caplog):
    recorded = tiny_settings(TINY_CLASSIFIER)
    assert RunFolder(run_dir).domain_classifier() == recorded != DEFAULT_SETTINGS
    with caplog.at_level(logging.INFO, logger="handwriting_gan.runs"):
        assert classifier_for_run(run_dir, DEFAULT_SETTINGS, chosen=False) == recorded
    assert f"classifier: the one the config of {run_dir} records" in caplog.text
    asked = tiny_settings(OTHER_TINY)
    assert classifier_for_run(run_dir, asked, chosen=True) == asked
    # A folder that is not a run has no classifier of its own (its own error comes later).
    assert RunFolder(tmp_path / "nothing").domain_classifier() is None
    assert classifier_for_run(tmp_path / "nothing", asked, chosen=False) == asked


def test_a_run_config_with_a_bad_classifier_names_its_file(run_dir):
    config = run_dir / ".hydra" / "config.yaml"
    config.write_text(config.read_text().replace("feature_dim: 32", "feature_dim: -1"))
    with pytest.raises(ConfigError, match=r"config.yaml records a classifier that cannot be used"):
        RunFolder(run_dir).domain_classifier()


def test_evaluate_and_export_use_the_runs_classifier_and_an_explicit_one_wins(run_dir, tmp_path):
    plain = ["num_samples=40", "device=cpu"]
    own = evaluate(command_config("evaluate", [f"run_dir={run_dir}", *plain, "metrics=[fd]", "threads=1"]))
    cached = sorted((tmp_path / "cache" / "classifiers").glob("*.pt"))
    assert [Path(own["classifier_file"])] == [c.resolve() for c in cached]  # only the run's was trained
    # The same classifier as asking for the run's settings explicitly.
    same = evaluate(
        compose_config(
            [f"run_dir={run_dir}", *plain, "metrics=[fd]", *TINY_CLASSIFIER], config_name="evaluate"
        )
    )
    assert same["classifier_file"] == own["classifier_file"]

    exported = export(command_config("export", [f"run_dir={run_dir}", *plain, f"out={tmp_path / 'a'}"]))
    assert exported["classifier_file"] == own["classifier_file"]

    # classifier.* on the command line wins over the run's.
    asked = export(
        command_config("export", [f"run_dir={run_dir}", *plain, f"out={tmp_path / 'b'}", *OTHER_TINY])
    )
    assert asked["classifier_file"] != own["classifier_file"]
    other = evaluate(command_config("evaluate", [f"run_dir={run_dir}", *plain, "metrics=[fd]", *OTHER_TINY]))
    assert other["classifier_file"] == asked["classifier_file"]
    assert len(list((tmp_path / "cache" / "classifiers").glob("*.pt"))) == 2
