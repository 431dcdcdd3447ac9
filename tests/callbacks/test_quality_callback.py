"""The training-time quality callback: off by default, and when on, FD in TensorBoard and for sweeps."""

import pytest
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from handwriting_gan.errors import ConfigError
from handwriting_gan.train import train
from tests_support import FAST, TINY_CLASSIFIER


def scalars(run_dir, prefix: str) -> dict[str, list[float]]:
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    tags = [tag for tag in events.Tags()["scalars"] if tag.startswith(prefix)]
    return {tag: [event.value for event in events.Scalars(tag)] for tag in tags}


def test_quality_is_off_by_default_and_trains_no_classifier(compose, tmp_path):
    cfg = compose([*FAST, f"paths.cache_dir={tmp_path / 'cache'}"])
    assert cfg.callbacks.quality.every_n_epochs == 0
    returned = train(cfg)
    assert returned == pytest.approx(
        scalars(tmp_path / "run", "train/g_loss_epoch")["train/g_loss_epoch"][-1]
    )
    assert not (tmp_path / "cache").exists()
    assert scalars(tmp_path / "run", "quality/") == {}


def test_fd_is_logged_every_n_epochs_and_after_the_last_and_returned_to_sweeps(compose, tmp_path):
    cfg = compose(
        [
            *FAST,
            "trainer.max_epochs=3",
            f"paths.cache_dir={tmp_path / 'cache'}",
            "callbacks.quality.every_n_epochs=2",
            "callbacks.quality.num_samples=64",
            "callbacks.quality.metrics=[fd,classes]",
            *TINY_CLASSIFIER,
        ]
    )
    assert cfg.optimized_metric is None  # by default: the quality metric, as the callback is on
    returned = train(cfg)
    logged = scalars(tmp_path / "run", "quality/")
    assert len(logged["quality/fd"]) == 2  # after epochs 2 and 3 (the last)
    assert returned == pytest.approx(logged["quality/fd"][-1])
    assert logged["quality/fd_floor"][0] > 0 and logged["quality/classifier_test_acc"][0] == 1.0
    assert "quality/class_entropy" in logged and "quality/kid" not in logged
    assert len(list((tmp_path / "cache" / "classifiers").glob("FakeDataModule-*.pt"))) == 1


def test_an_unknown_metric_name_is_a_config_error(compose):
    cfg = compose([*FAST, "callbacks.quality.metrics=[fid]"])
    from hydra.utils import instantiate

    with pytest.raises(Exception) as caught:
        instantiate(OmegaConf.to_container(cfg.callbacks.quality, resolve=True))
    assert isinstance(caught.value, ConfigError) or isinstance(caught.value.__cause__, ConfigError)
    assert "fid" in str(caught.value) and "choose from" in str(caught.value)
