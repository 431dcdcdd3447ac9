"""The pair game (game/pairs.py) of an image-conditional augmenter, trained for a few batches in this
process through the training command's own function: it trains on pairs, its grid shows sources and
their variations, it resumes exactly, and its generator.pt is an augmenter."""

from pathlib import Path

import pytest
import torch
from PIL import Image

from handwriting_gan.augmenter import Augmenter
from handwriting_gan.config import compose_config, instantiate
from handwriting_gan.errors import ConfigError
from handwriting_gan.game import PairGAN
from handwriting_gan.models.dcgan import DCGANDiscriminator, DCGANGenerator
from handwriting_gan.runs import RunFolder
from tests_support import FAST, train_in_process

SMALL = ["model.generator.channels=8", "model.discriminator.channels=8", "model.ema_start=2"]
DAGAN = [*FAST, "model=dagan", *SMALL]


@pytest.fixture(scope="module")
def dagan_run(tmp_path_factory) -> Path:
    return train_in_process(DAGAN, tmp_path_factory.mktemp("dagan") / "run")


def test_the_augmenter_trains_on_pairs_and_saves_an_image_conditional_generator(dagan_run):
    run = RunFolder(dagan_run)
    assert run.is_finished()
    augmenter = Augmenter.load(dagan_run)
    assert augmenter.image_conditional and augmenter.class_names == ()
    images = torch.randint(0, 255, (3, 1, 28, 28), dtype=torch.uint8)
    made, labels, sources = augmenter.vary(images, torch.tensor([4, 5, 6]), copies=2, seed=0)
    assert made.shape == (6, 1, 28, 28) and made.dtype == torch.uint8
    assert labels.tolist() == [4, 5, 6, 4, 5, 6] and sources.tolist() == [0, 1, 2, 0, 1, 2]


def test_its_grid_rows_start_with_the_real_source(dagan_run):
    from handwriting_gan.data.base import to_signed_unit

    grid = Image.open(dagan_run / "figures" / "samples_epoch_002.png")
    assert grid.width == grid.height  # unconditional layout: the dataset's sample_grid squared
    cfg = compose_config(DAGAN)
    datamodule = instantiate(cfg.dataset)
    images, labels = datamodule.split(train=True)
    first = images[labels == labels.min()][0]  # the grid's rows take one class after another
    # The first cell (scale 4, padding 2) is that real training image; the next cell is a variation.
    cells = [grid.crop((8 + x, 8, 8 + x + 112, 8 + 112)).resize((28, 28), Image.NEAREST) for x in (0, 120)]
    real = to_signed_unit(first).add(1).mul(127.5).round().flatten()
    source, varied = (torch.tensor(list(cell.getdata())).float() for cell in cells)
    assert (source - real).abs().mean() < 2
    # The warp head starts as the identity: after a few batches a variation is close to its source, not it.
    assert not torch.equal(varied, source)


def test_the_game_refuses_a_generator_that_is_not_image_conditional():
    generator = DCGANGenerator(latent_dim=8, image_shape=(1, 28, 28), base_channels=8)
    discriminator = DCGANDiscriminator(image_shape=(1, 28, 28), base_channels=8)
    optimizer = torch.optim.Adam
    with pytest.raises(ConfigError, match="image-conditional generator"):
        PairGAN(generator, discriminator, optimizer)


def test_unpaired_batches_are_a_clear_error():
    cfg = compose_config(DAGAN)
    game = instantiate(cfg.model)
    real = torch.zeros(4, 1, 28, 28)
    with pytest.raises(ValueError, match="pairs"):
        game._step(real, None, None, None, None)


@pytest.mark.parametrize("key,value", [("r1_gamma", -1), ("r1_every", 0)])
def test_bad_regularisation_settings_are_refused(key, value):
    cfg = compose_config([*DAGAN, f"model.{key}={value}"])
    with pytest.raises(Exception, match=key):
        instantiate(cfg.model)


def test_a_resumed_pair_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path):
    whole = train_in_process([*DAGAN, "trainer.max_epochs=2"], tmp_path / "whole")
    half = train_in_process([*DAGAN, "trainer.max_epochs=1"], tmp_path / "half")
    from handwriting_gan.config import compose_config as compose

    cfg = compose([*DAGAN, "trainer.max_epochs=2", f"resume={half}"], run_dir=half)
    from handwriting_gan.train import train

    train(cfg)
    a = torch.load(whole / "generator.pt", weights_only=True)["state_dict"]
    b = torch.load(half / "generator.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
