"""The divergence guard: a NaN stops the run with its epoch and batch, or rolls back when asked."""

import math

import lightning as L
import pytest
import torch

from handwriting_gan.assembly import build
from handwriting_gan.config import compose_config
from handwriting_gan.errors import DivergenceError
from tests_support import FAST


class PoisonAt(L.Callback):
    """Puts a NaN into the generator's first weight just before (epoch, batch)."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if (trainer.current_epoch, batch_idx) == (self.epoch, self.batch):
            with torch.no_grad():
                next(pl_module.generator.parameters())[0, 0] = float("nan")


def fit_with_poison(run_dir, *overrides):
    cfg = compose_config([*FAST, "trainer.max_epochs=3", *overrides], run_dir=run_dir)
    trainer, game, datamodule = build(cfg)
    trainer.callbacks.insert(0, PoisonAt(epoch=1, batch=2))
    trainer.fit(game, datamodule=datamodule)
    return trainer, game


def test_nan_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    with pytest.raises(DivergenceError) as error:
        fit_with_poison(tmp_path)
    assert "epoch 1, batch 2" in str(error.value) and "non-finite loss" in str(error.value)
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["epoch"] == 0  # written after epoch 0, never after the NaN
    assert all(torch.isfinite(t).all() for t in checkpoint["state_dict"].values())
    assert not (tmp_path / "generator.pt").exists()


def test_rollback_reloads_the_checkpoint_and_lowers_the_learning_rate(tmp_path):
    with pytest.warns(UserWarning, match="rolled back"):
        trainer, game = fit_with_poison(tmp_path, "callbacks.divergence.rollback=true")
    assert trainer.current_epoch == 3  # it went on to the end
    assert math.isclose(game.learning_rate, 1e-4)
    assert all(group["lr"] == 1e-4 for opt in trainer.optimizers for group in opt.param_groups)
    assert all(torch.isfinite(p).all() for p in game.parameters())


def test_diverging_learning_rate_exits_with_code_6(cli):
    result = cli([*FAST, "optim.lr=1e30"])
    assert result.returncode == 6, result.stderr[-1500:]
    assert "training diverged at epoch 0, batch 0" in result.stderr and "Traceback" not in result.stderr
