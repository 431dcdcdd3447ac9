"""What a finished run leaves for a person: sample grids, the GIF, the loss figure, TensorBoard events."""

from pathlib import Path

import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from handwriting_gan.config import compose_config
from handwriting_gan.train import train
from tests_support import FAST

EPOCHS = 3


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("run")
    cfg = compose_config([*FAST, f"trainer.max_epochs={EPOCHS}"], run_dir=run_dir)
    train(cfg)
    return run_dir


def test_one_sample_grid_per_epoch_sized_by_the_dataset(finished_run):
    frames = sorted((finished_run / "figures").glob("samples_epoch_*.png"))
    assert [f.name for f in frames] == [f"samples_epoch_{e:03d}.png" for e in range(1, EPOCHS + 1)]
    # 4x4 grid of 28 px images with make_grid's 2 px padding (4 * 30 + 2 = 122), enlarged 4 times.
    assert Image.open(frames[0]).size == (488, 488)


def test_progress_gif_has_one_frame_per_epoch(finished_run):
    gif = Image.open(finished_run / "figures" / "progress.gif")
    assert gif.format == "GIF"
    assert gif.n_frames == EPOCHS


def test_loss_figure_is_a_real_plot(finished_run):
    figure = Image.open(finished_run / "figures" / "losses.png")
    assert figure.size == (600, 400)
    assert len(set(figure.convert("RGB").getdata())) > 10  # lines, text and axes, not a blank canvas


def test_tensorboard_holds_grids_losses_and_hyperparameters(finished_run):
    events = EventAccumulator(str(finished_run / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    tags = events.Tags()
    assert len(events.Images("samples")) == EPOCHS
    for name in ("d_loss", "g_loss", "d_real", "d_fake"):
        assert len(events.Scalars(f"train/{name}_epoch")) == EPOCHS
        assert f"train/{name}_step" in tags["scalars"]
    d_real = [e.value for e in events.Scalars("train/d_real_epoch")]
    assert all(0.0 < value < 1.0 for value in d_real)  # mean D(x) is a probability
    hparams = (finished_run / "tensorboard" / "hparams.yaml").read_text()
    assert "d_steps: 1" in hparams and "lr: 0.0002" in hparams


def test_generator_file_rebuilds_the_generator(finished_run):
    import torch

    from handwriting_gan.models.generator_file import load_generator

    generator, meta = load_generator(finished_run / "generator.pt")
    assert meta["latent_dim"] == 100 and meta["image_shape"] == [1, 28, 28]
    assert meta["class_names"] == [f"class_{i}" for i in range(10)]
    images = generator(torch.randn(3, 100))
    assert images.shape == (3, 1, 28, 28)


def test_real_reference_grid_is_captioned_by_class(finished_run):
    sheet = Image.open(finished_run / "figures" / "real_samples.png")
    assert sheet.size == (4 * 56, 4 * (56 + 12))  # 4x4 cells enlarged twice, a caption strip each
    caption_strip = sheet.crop((0, 56, 56, 68))
    assert caption_strip.getextrema()[1] > 128  # white text on the black strip under the first cell


def test_round_robin_takes_every_class_before_repeating():
    import torch

    from handwriting_gan.callbacks.samples import _round_robin_by_class

    labels = torch.tensor([3, 3, 3, 7, 7, 9])
    picks = _round_robin_by_class(labels, 5)
    assert [labels[i].item() for i in picks] == [3, 7, 9, 3, 7]


def test_every_file_of_the_run_is_readable_like_any_other(finished_run):
    import os

    expected = 0o666 & ~_umask()
    modes = {
        str(p.relative_to(finished_run)): p.stat().st_mode & 0o777
        for p in finished_run.rglob("*")
        if p.is_file()
    }
    assert modes["generator.pt"] == expected and modes["figures/losses.png"] == expected, modes
    assert all(mode & 0o044 == expected & 0o044 for mode in modes.values()), modes
    assert os.access(finished_run / "generator.pt", os.R_OK)


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_generator_file_holds_the_trained_weights_and_draws_the_last_grid(finished_run):
    import numpy as np
    import torch
    from torchvision.utils import make_grid

    from handwriting_gan.models.generator_file import load_generator

    generator, _ = load_generator(finished_run / "generator.pt")
    checkpoint = torch.load(finished_run / "checkpoints" / "last.ckpt", weights_only=True)
    trained = {
        k.removeprefix("generator."): v
        for k, v in checkpoint["state_dict"].items()
        if k.startswith("generator.")
    }
    saved = generator.state_dict()
    assert saved.keys() == trained.keys()
    assert all(torch.equal(saved[k], trained[k]) for k in saved)

    # The grid's fixed noise: seed 42 (the run's seed), 16 vectors of 100.
    noise = torch.randn(16, 100, generator=torch.Generator().manual_seed(42))
    with torch.no_grad():
        grid = make_grid(generator(noise), nrow=4, normalize=True, value_range=(-1, 1), padding=2)
    expected = grid.mul(255).round().clamp(0, 255).to(torch.uint8)[0].numpy()
    last = np.array(Image.open(finished_run / "figures" / f"samples_epoch_{EPOCHS:03d}.png"))[::4, ::4]
    assert np.abs(last.astype(int) - expected.astype(int)).max() <= 1
