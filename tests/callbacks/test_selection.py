"""callbacks.selection (handwriting_gan/callbacks/selection.py): an image-conditional augmenter's training
length chosen on validation classes; the node of experiment=dagan_omniglot, at toy size on the fake data."""

import json

import pytest
import torch
from omegaconf import OmegaConf, open_dict
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from handwriting_gan.augmenter import Augmenter
from handwriting_gan.config import compose_config
from handwriting_gan.errors import ConfigError
from handwriting_gan.models.generator_file import load_generator
from handwriting_gan.train import train
from tests_support import FAST

TINY_DAGAN = [*FAST, "model=dagan", "model.generator.channels=8", "model.discriminator.channels=8"]
# Every epoch, two episodes of 3 images per class, classifiers of 5 steps.
TOY = {
    "every_n_epochs": 1,
    "episodes": 2,
    "per_class": 3,
    "variations": 2,
    "copies": 2,
    "classifier": {"steps": 5, "batch_size": 16, "max_shift": 0},
    "dataset_changes": {},  # the fake data has no character split: its own classes stand in
}


def with_selection(overrides, run_dir, **changes):
    """The run config of `overrides` with the shipped experiment's selection callback, at toy size."""
    shipped = compose_config(["experiment=dagan_omniglot"], run_dir=run_dir)
    node = OmegaConf.to_container(shipped.callbacks.selection, resolve=False)  # its interpolations kept
    cfg = compose_config(list(overrides), run_dir=run_dir)
    with open_dict(cfg):
        cfg.callbacks.selection = {**node, **TOY, **changes}
    return cfg


def weights(path):
    return load_generator(path)[0].state_dict()


def same_weights(first, second) -> bool:
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


@pytest.fixture(scope="module")
def selected_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("selection") / "run"
    train(with_selection([*TINY_DAGAN, "trainer.max_epochs=3"], run))
    return run


def test_every_evaluation_is_recorded_and_the_best_generator_is_kept(selected_run):
    record = json.loads((selected_run / "selection.json").read_text())
    rows = record["evaluations"]
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    for row in rows:
        assert len(row["gains"]) == 2 and row["gain"] == pytest.approx(sum(row["gains"]) / 2)
        assert row["gain"] == pytest.approx(row["accuracy"] - row["baseline"])
    assert len({row["baseline"] for row in rows}) == 1  # (b) does not depend on the generator
    # The first of the highest gains is the one kept.
    best = max(rows, key=lambda row: (row["gain"], -row["epoch"]))
    assert record["best"] == best
    selected = Augmenter.load(selected_run / "selected_generator.pt")
    assert selected.image_conditional and selected.image_shape == (1, 28, 28)
    # It records the classes it trained on, as the run's own generator.pt does.
    kept, run_file = (
        load_generator(selected_run / "selected_generator.pt")[1],
        load_generator(selected_run / "generator.pt")[1],
    )
    assert kept["class_names"] == run_file["class_names"] and len(kept["class_names"]) > 1
    # The kept file is the last epoch's generator exactly when the last evaluation was the best.
    is_last = same_weights(
        weights(selected_run / "selected_generator.pt"), weights(selected_run / "generator.pt")
    )
    assert is_last == (best["epoch"] == 3)


def test_each_evaluation_is_logged_to_tensorboard(selected_run):
    events = EventAccumulator(str(selected_run / "tensorboard"))
    events.Reload()
    record = json.loads((selected_run / "selection.json").read_text())
    gains = [event.value for event in events.Scalars("selection/gain")]
    assert gains == pytest.approx([row["gain"] for row in record["evaluations"]], abs=1e-4)
    assert events.Scalars("selection/best_epoch")[-1].value == record["best"]["epoch"]


def test_the_measurement_leaves_the_training_itself_unchanged(selected_run, compose):
    # The same run without the callback: the classifiers it trains draw no number from the run's random
    # state, so the generator ends bit for bit the same.
    plain = compose([*TINY_DAGAN, "trainer.max_epochs=3"])
    train(plain)
    assert same_weights(
        weights(selected_run / "generator.pt"), weights(plain.paths.run_dir + "/generator.pt")
    )


def test_a_resumed_run_continues_the_record_as_an_uninterrupted_one_has_it(selected_run, tmp_path):
    run = tmp_path / "resumed"
    train(with_selection([*TINY_DAGAN, "trainer.max_epochs=2"], run))
    train(with_selection([*TINY_DAGAN, "trainer.max_epochs=3", f"resume={run}"], run))
    straight = json.loads((selected_run / "selection.json").read_text())
    resumed = json.loads((run / "selection.json").read_text())
    assert resumed == straight
    assert same_weights(
        weights(run / "selected_generator.pt"), weights(selected_run / "selected_generator.pt")
    )


def test_a_generator_that_draws_from_noise_alone_is_refused_before_training(tmp_path):
    cfg = with_selection(FAST, tmp_path / "mlp")
    with pytest.raises(ConfigError, match=r"callbacks.selection measures an image-conditional augmenter"):
        train(cfg)
    assert not (tmp_path / "mlp" / "generator.pt").exists()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"every_n_epochs": 0}, r"callbacks.selection.every_n_epochs=0 must be a whole number of at least 1"),
        ({"episodes": "three"}, r"callbacks.selection.episodes=three must be a whole number"),
        ({"classifier": {"steps": 5, "depth": 3}}, r"arm_classifier has unknown keys \['depth'\]"),
        ({"classical": {"degrees": 10}}, r"callbacks.selection.classical must be a config with a _target_"),
    ],
)
def test_impossible_settings_are_config_errors(tmp_path, change, match):
    from handwriting_gan.config import instantiate

    cfg = with_selection(TINY_DAGAN, tmp_path / "run", **change)
    with pytest.raises(ConfigError, match=match):
        instantiate(cfg.callbacks.selection)


def test_its_baseline_is_the_studys_untuned_classical_augmentation_and_follows_its_overrides():
    # Both come from the config group conf/classical/, so a change to (b) there reaches both; one
    # command's override reaches only its own.
    study = compose_config(["dataset=omniglot"], config_name="study")
    run = compose_config(["experiment=dagan_omniglot"])
    assert run.callbacks.selection.classical == study.classical
    assert study.classical.transforms[1]._target_ == "torchvision.transforms.v2.ElasticTransform"
    changed = compose_config(
        ["experiment=dagan_omniglot", "callbacks.selection.classical.transforms.0.degrees=5"]
    )
    assert changed.callbacks.selection.classical.transforms[0].degrees == 5
    assert "classical" not in changed  # the training config gains no top-level key of its own
