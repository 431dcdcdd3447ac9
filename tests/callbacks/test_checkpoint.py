"""last.ckpt is replaced atomically: a crash while writing leaves the previous checkpoint intact."""

import pytest
import torch

from handwriting_gan.assembly import build
from handwriting_gan.callbacks.checkpoint import LastCheckpoint
from handwriting_gan.config import compose_config
from tests_support import FAST


def test_crash_while_writing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    cfg = compose_config([*FAST, "trainer.max_epochs=1"], run_dir=tmp_path)
    trainer, game, datamodule = build(cfg)
    trainer.fit(game, datamodule=datamodule)
    last = tmp_path / "checkpoints" / "last.ckpt"
    good = last.read_bytes()

    def crash_half_way(path, weights_only=False):
        with open(path, "wb") as handle:
            handle.write(good[: len(good) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(trainer, "save_checkpoint", crash_half_way)
    (callback,) = [c for c in trainer.callbacks if isinstance(c, LastCheckpoint)]
    with pytest.raises(OSError, match="disk full"):
        callback.save_now(trainer)
    assert last.read_bytes() == good
    assert torch.load(last, weights_only=True)["epoch"] == 0
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.ckpt"]  # no half-written file left


def fit_recording_saves(overrides, run_dir):
    """Train with `overrides`; the (epoch, batch index) at which each checkpoint was written."""
    cfg = compose_config([*FAST, *overrides], run_dir=run_dir)
    trainer, game, datamodule = build(cfg)
    saved_at = []
    original = trainer.save_checkpoint

    def record(path, weights_only=False):
        saved_at.append((trainer.current_epoch, trainer.fit_loop.epoch_loop.batch_idx))
        original(path, weights_only)

    trainer.save_checkpoint = record
    trainer.fit(game, datamodule=datamodule)
    return trainer, saved_at


def test_checkpoints_every_n_batches_and_at_the_epoch_end(tmp_path):
    trainer, saved_at = fit_recording_saves(
        ["trainer.max_epochs=1", "++trainer.limit_train_batches=5", "callbacks.checkpoint.every_n_batches=2"],
        tmp_path,
    )
    # After batches 2 and 4, and at the end of the epoch (5 batches).
    assert saved_at == [(0, 1), (0, 3), (0, 4)]
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    # The one checkpoint callback of the run: Lightning adds no ModelCheckpoint of its own.
    assert [type(c) for c in trainer.checkpoint_callbacks] == [LastCheckpoint]


def test_batch_counts_run_on_across_epochs_and_one_step_is_saved_once(tmp_path):
    """Every 2 batches of 3-batch epochs: after global batches 2, 4 and 6, and at each epoch end; the
    epoch end that is also batch 6 writes once."""
    _, saved_at = fit_recording_saves(
        ["trainer.max_epochs=2", "++trainer.limit_train_batches=3", "callbacks.checkpoint.every_n_batches=2"],
        tmp_path,
    )
    assert saved_at == [(0, 1), (0, 2), (1, 0), (1, 2)]


def test_checkpoints_every_n_epochs(tmp_path):
    _, saved_at = fit_recording_saves(
        ["trainer.max_epochs=4", "callbacks.checkpoint.every_n_epochs=2"], tmp_path
    )
    assert saved_at == [(1, 3), (3, 3)]  # at the ends of epochs 2 and 4 (4 batches each)
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["epoch"] == 3 and state["handwriting_gan"]["checkpoint_format"] == 1


def test_a_checkpoint_from_before_resumes_without_a_warning(tmp_path):
    """Checkpoints written while LastCheckpoint was a ModelCheckpoint hold that class's state under
    LastCheckpoint's name; they resume as they are, without Lightning's missing-callback warning."""
    import warnings

    from handwriting_gan.shell import quiet_dependencies

    cfg = compose_config([*FAST, "trainer.max_epochs=1"], run_dir=tmp_path)
    trainer, game, datamodule = build(cfg)
    trainer.fit(game, datamodule=datamodule)
    last = tmp_path / "checkpoints" / "last.ckpt"
    state = torch.load(last, weights_only=True)
    key = "LastCheckpoint{'monitor': None, 'mode': 'min', 'every_n_train_steps': 0, 'every_n_epochs': 1, "
    state["callbacks"] = {key + "'train_time_interval': None}": {"best_model_path": str(last)}}
    torch.save(state, last)
    cfg = compose_config([*FAST, "trainer.max_epochs=2"], run_dir=tmp_path)
    trainer, game, datamodule = build(cfg)
    with warnings.catch_warnings(record=True) as caught:
        quiet_dependencies()
        trainer.fit(game, datamodule=datamodule, ckpt_path=last)
    assert trainer.global_step == 2 * trainer.num_training_batches * 2
    assert not [w for w in caught if "callbacks" in str(w.message)]
