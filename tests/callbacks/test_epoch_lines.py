"""The console lines of a run started by another command (callbacks/epoch_lines.py): how far it is, and at
the end how long it took, saying when that time covers only the epochs after a checkpoint."""

from __future__ import annotations

from types import SimpleNamespace

from handwriting_gan.callbacks.epoch_lines import EpochLines


def lines_of(first_epoch: int, total: int, capsys) -> list[str]:
    trainer = SimpleNamespace(current_epoch=first_epoch, max_epochs=total)
    callback = EpochLines("the GAN", every=0.5)
    callback.on_train_start(trainer, None)
    for epoch in range(first_epoch, total):
        trainer.current_epoch = epoch
        callback.on_train_epoch_end(trainer, None)
    return capsys.readouterr().err.rstrip().splitlines()


def test_a_whole_run_says_its_half_way_point_and_its_total(capsys):
    lines = lines_of(0, 10, capsys)
    assert len(lines) == 2
    assert lines[0].startswith("  the GAN: epoch 5 of 10, about ")
    assert lines[1].startswith("  the GAN: 10 epochs done in ")
    assert "checkpoint" not in lines[1]


def test_a_continued_run_says_which_epochs_its_time_covers(capsys):
    lines = lines_of(6, 10, capsys)
    assert lines == [lines[0]] and lines[0].startswith("  the GAN: 10 epochs done in ")
    assert lines[0].endswith("(epochs 7-10; it continued from a checkpoint)")
