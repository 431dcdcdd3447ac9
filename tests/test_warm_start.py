"""init_from=<run>: a run starts from another run's G and D weights (handwriting_gan.warm_start)."""

from __future__ import annotations

import pytest
import torch

from handwriting_gan.assembly import build_game
from handwriting_gan.errors import CheckpointError
from handwriting_gan.warm_start import warm_start
from tests_support import FAST

# A conditional DCGAN small enough for seconds-long runs.
SMALL_CDCGAN = [
    "model=cdcgan",
    "model.generator.base_channels=8",
    "model.discriminator.base_channels=8",
]


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    """A finished cdcgan run on 5 classes: the pretrained run others start from (trained in process)."""
    from tests_support import train_in_process

    overrides = [*FAST, *SMALL_CDCGAN, "dataset.num_classes=5"]
    return train_in_process(overrides, tmp_path_factory.mktemp("source") / "run")


def _checkpoint_weights(run) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def test_matching_weights_are_copied_and_class_embeddings_of_another_size_stay_fresh(compose, source_run):
    cfg = compose([*FAST, *SMALL_CDCGAN])  # 10 classes here, 5 in the source run
    game = build_game(cfg, num_classes=10)
    before = {k: v.clone() for k, v in game.state_dict().items()}
    source = _checkpoint_weights(source_run)

    result = warm_start(game, source_run)

    after = game.state_dict()
    fresh = {name for name, _, _ in result.fresh}
    assert fresh == {"generator.embedding.weight", "discriminator.embedding.weight"}
    for name in fresh:
        assert torch.equal(after[name], before[name])
    assert result.loaded, "nothing was copied"
    for name in result.loaded:
        assert name.split(".")[0] in ("generator", "discriminator")
        assert torch.equal(after[name], source[name])
    # Every player weight is either copied or reported fresh.
    players = {n for n in after if n.split(".")[0] in ("generator", "discriminator")}
    assert players == set(result.loaded) | fresh
    summary = result.summary()
    assert f"{len(result.loaded)} of {len(players)}" in summary
    assert "generator.embedding.weight ([5, 50] there, [10, 50] here)" in summary


def test_a_run_with_init_from_trains_from_the_source_weights(cli, tmp_path, source_run):
    run = tmp_path / "finetuned"
    # A learning rate so small that one batch leaves the weights where they started.
    result = cli(
        [
            *FAST,
            *SMALL_CDCGAN,
            f"init_from={source_run}",
            "optim.lr=1e-12",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=1",
            f"hydra.run.dir={run}",
        ]
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("init_from: ") == 1
    source = _checkpoint_weights(source_run)
    finetuned = _checkpoint_weights(run)
    compared = 0
    for name, tensor in finetuned.items():
        if name.startswith("generator.") and "embedding" not in name and tensor.is_floating_point():
            if "running" in name:  # batch norm statistics move with every batch, whatever the lr
                continue
            torch.testing.assert_close(tensor, source[name], atol=1e-6, rtol=0)
            compared += 1
    assert compared > 5


def test_resume_of_a_warm_started_run_continues_from_its_own_checkpoint(cli, tmp_path, source_run):
    import shutil

    copy = tmp_path / "pretrained"
    shutil.copytree(source_run, copy)
    run = tmp_path / "finetuned"
    first = cli([*FAST, *SMALL_CDCGAN, f"init_from={copy}", "trainer.max_epochs=1", f"hydra.run.dir={run}"])
    assert first.returncode == 0, first.stderr
    shutil.rmtree(copy)  # the pretrained run is gone: resuming must not need it
    second = cli([f"resume={run}", "trainer.max_epochs=2"])
    assert second.returncode == 0, second.stderr
    assert "init_from: " not in second.stderr


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda tmp: tmp / "missing", "does not exist"),
        (lambda tmp: tmp, "is not a run folder"),
    ],
    ids=["missing", "not-a-run"],
)
def test_init_from_that_is_not_a_run_is_refused_before_any_folder(cli, tmp_path, make, expected):
    result = cli([*FAST, f"init_from={make(tmp_path)}"])
    assert result.returncode == CheckpointError.exit_code  # the same code as resume= of such a folder
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("option", ["init_from", "resume"])
def test_a_missing_run_folder_is_the_same_error_for_init_from_and_resume(tmp_path, option):
    from handwriting_gan.runs import RunFolder
    from handwriting_gan.warm_start import source_checkpoint

    check = {"init_from": source_checkpoint, "resume": lambda p: RunFolder(p).require_resumable()}[option]
    with pytest.raises(CheckpointError, match=f"{option}=.*does not exist"):
        check(tmp_path / "missing")
    with pytest.raises(CheckpointError, match=f"{option}=.*is not a run folder"):
        check(tmp_path)


def test_init_from_a_run_without_checkpoint_says_so(compose, tmp_path, source_run):
    import shutil

    copy = tmp_path / "no_checkpoint"
    shutil.copytree(source_run, copy)
    (copy / "checkpoints" / "last.ckpt").unlink()
    game = build_game(compose([*FAST, *SMALL_CDCGAN]), num_classes=10)
    with pytest.raises(CheckpointError, match="has no checkpoints/last.ckpt"):
        warm_start(game, copy)


def test_init_from_another_architecture_is_refused(cli, tmp_path, source_run):
    result = cli([*FAST, "model=mlp3", f"init_from={source_run}"])
    assert result.returncode == CheckpointError.exit_code
    assert "none of its generator's weights fit" in result.stderr
    assert "Traceback" not in result.stderr
    assert not any((tmp_path / "outputs").rglob("generator.pt"))
