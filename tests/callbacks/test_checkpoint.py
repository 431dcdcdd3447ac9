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
        callback._save_checkpoint(trainer, str(last))
    assert last.read_bytes() == good
    assert torch.load(last, weights_only=True)["epoch"] == 0
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.ckpt"]  # no half-written file left


def test_checkpoints_every_n_batches_and_at_the_epoch_end(tmp_path):
    cfg = compose_config(
        [
            *FAST,
            "trainer.max_epochs=1",
            "++trainer.limit_train_batches=5",
            "callbacks.checkpoint.every_n_batches=2",
        ],
        run_dir=tmp_path,
    )
    trainer, game, datamodule = build(cfg)
    saved_at = []
    original = trainer.save_checkpoint

    def record(path, weights_only=False):
        saved_at.append(trainer.fit_loop.epoch_loop.batch_idx)
        original(path, weights_only)

    trainer.save_checkpoint = record
    trainer.fit(game, datamodule=datamodule)
    assert saved_at == [1, 3, 4]  # after batches 2 and 4, and at the end of the epoch (5 batches)
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
