"""Every finished run is one row of TensorBoard's HParams dashboard: its config beside its final FD,
floor and losses, read back with TensorBoard's own event reader."""

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from handwriting_gan.train import train
from tests_support import FAST, TINY_CLASSIFIER

TINY_QUALITY = ["callbacks.quality.every_n_epochs=2", "callbacks.quality.num_samples=64", *TINY_CLASSIFIER]


def hparams_plugin(run_dir) -> tuple[EventAccumulator, dict[str, HParamsPluginData]]:
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    content = events.PluginTagToContent(metadata.PLUGIN_NAME)
    return events, {tag: HParamsPluginData.FromString(data) for tag, data in content.items()}


def test_a_finished_run_logs_its_hyperparameters_with_its_final_metrics(compose, tmp_path):
    cfg = compose(
        [*FAST, "d_steps=2", "optim.lr=3e-4", f"paths.cache_dir={tmp_path / 'cache'}", *TINY_QUALITY]
    )
    train(cfg)
    events, plugin = hparams_plugin(tmp_path / "run")

    session = plugin[metadata.SESSION_START_INFO_TAG].session_start_info
    assert session.hparams["d_steps"].number_value == 2
    assert session.hparams["optim/lr"].number_value == pytest.approx(3e-4)
    assert session.hparams["dataset/_target_"].string_value == "handwriting_gan.data.fake.FakeDataModule"
    assert not any(name.startswith(("paths/", "callbacks/")) for name in session.hparams)

    metrics = {m.name.tag for m in plugin[metadata.EXPERIMENT_TAG].experiment.metric_infos}
    for name in ("quality/fd", "quality/fd_floor", "train/d_loss_epoch", "train/g_loss_epoch"):
        assert f"final/{name}" in metrics
        # The dashboard reads each metric's value from the scalar series of that tag: the last epoch's.
        (final,) = events.Scalars(f"final/{name}")
        assert final.value == pytest.approx(events.Scalars(name)[-1].value)
        assert final.step == events.Scalars(name)[-1].step
    assert not any(name.endswith("_step") for name in metrics)


def test_resuming_a_finished_run_adds_no_second_row(compose, tmp_path):
    train(compose([*FAST, "trainer.max_epochs=1"]))
    # The checkpoint is at max_epochs already: nothing trains, so there are no new final metrics.
    train(compose([*FAST, "trainer.max_epochs=1", f"resume={tmp_path / 'run'}"]))
    events, plugin = hparams_plugin(tmp_path / "run")
    assert metadata.SESSION_START_INFO_TAG in plugin
    assert len(events.Scalars("final/train/g_loss_epoch")) == 1
