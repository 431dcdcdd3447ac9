"""The two-player game (game/gan.py): both players update, k discriminator steps, the generator really
learns, and its options (augmentation, EMA, batch-norm discriminators, mode seeking) reach the game."""

import copy
import functools

import lightning as L
import pytest
import torch
from torch import nn

from handwriting_gan.assembly import build
from handwriting_gan.config import compose_config
from handwriting_gan.data.base import to_signed_unit
from handwriting_gan.game import GAN
from handwriting_gan.game.losses import mode_seeking_penalty
from handwriting_gan.models.contract import Discriminator, Generator
from handwriting_gan.models.mlp import MLPDiscriminator, MLPGenerator
from tests_support import FAST


def fit(overrides, run_dir):
    cfg = compose_config([*FAST, *overrides], run_dir=run_dir)
    trainer, game, datamodule = build(cfg)
    before = {k: v.clone() for k, v in game.state_dict().items()}
    trainer.fit(game, datamodule=datamodule)
    return trainer, game, datamodule, before


def test_each_batch_updates_both_players_with_k_discriminator_steps(tmp_path):
    trainer, game, _, before = fit(["d_steps=3", "trainer.max_epochs=1"], tmp_path)
    after = game.state_dict()
    for name in before:
        assert not torch.equal(before[name], after[name]), f"{name} did not change"
    opt_g, opt_d = (o.optimizer for o in game.optimizers())
    g_steps = opt_g.state[next(iter(game.generator.parameters()))]["step"].item()
    d_steps = opt_d.state[next(iter(game.discriminator.parameters()))]["step"].item()
    assert g_steps == trainer.num_training_batches == 4
    assert d_steps == 3 * g_steps


def mean_distance_to_nearest_prototype(generator, prototypes, samples=512):
    with torch.no_grad():
        images = generator(
            torch.randn(samples, generator.latent_dim, generator=torch.Generator().manual_seed(0))
        )
    return torch.cdist(images.flatten(1), prototypes.flatten(1)).min(dim=1).values.mean().item()


def fit_seeded(overrides, run_dir):
    cfg = compose_config(
        ["trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", *overrides],
        run_dir=run_dir,
    )
    L.seed_everything(cfg.seed, verbose=False)  # the networks' initial weights, as `train` seeds them
    trainer, game, datamodule = build(cfg)
    return trainer, game, datamodule


@pytest.mark.slow
def test_training_moves_generated_samples_toward_the_data(tmp_path):
    """On a simple dataset (10 noisy prototypes), 512 steps of the study's networks bring generated
    samples much closer to the nearest real prototype than the random start (measured: from ~28 to
    8-10; real images sit ~2 from theirs). The unconditional MLP GAN collapses onto one or two of
    these well-separated prototypes within those steps, so spread is checked on digits below."""
    trainer, game, datamodule = fit_seeded(
        ["dataset=fake", "dataset.size=2048", "dataset.batch_size=64", "trainer.max_epochs=16", "seed=7"],
        tmp_path,
    )
    prototypes = to_signed_unit((datamodule.prototypes() * 255).round().to(torch.uint8))
    untrained = mean_distance_to_nearest_prototype(game.generator, prototypes)
    trainer.fit(game, datamodule=datamodule)
    trained = mean_distance_to_nearest_prototype(game.generator, prototypes)
    assert trained < 0.5 * untrained, (untrained, trained)


@pytest.mark.slow
def test_generated_digits_spread_over_several_classes(tmp_path):
    """Three epochs on the embedded MNIST sample: samples come closer to real digits and are not all
    one digit (class of a sample = class of its nearest real training image). Measured with seeds 42
    and 7: 3-4 digits with over 5% of the samples each, the most common one 39-51%; a generator that
    collapsed onto one mode puts every sample on one digit."""
    trainer, game, datamodule = fit_seeded(["trainer.max_epochs=3", "seed=42"], tmp_path)
    images, labels = datamodule.split(train=True)
    real = to_signed_unit(images).flatten(1)

    def nearest_digits():
        with torch.no_grad():
            samples = game.generator(torch.randn(500, 100, generator=torch.Generator().manual_seed(0)))
        nearest = torch.cdist(samples.flatten(1), real).min(dim=1)
        return nearest.values.mean().item(), labels[nearest.indices]

    untrained, _ = nearest_digits()
    trainer.fit(game, datamodule=datamodule)
    trained, digits = nearest_digits()
    shares = torch.bincount(digits, minlength=10).float() / len(digits)
    assert trained < 0.75 * untrained, (untrained, trained)
    assert (shares > 0.05).sum() >= 3, shares
    assert shares.max() < 0.6, shares


class NoisyGenerator(Generator):
    """A generator whose output depends on training state: dropout, and batch norm's statistics."""

    def __init__(self):
        super().__init__(latent_dim=4, image_shape=(1, 2, 2))
        self.net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Dropout(0.5), nn.Tanh())

    def forward(self, z, labels=None):
        return self.net(z).view(-1, 1, 2, 2)


def test_sampling_uses_eval_mode_and_leaves_training_state_untouched():
    game = GAN(
        NoisyGenerator(),
        MLPDiscriminator(hidden=[4], image_shape=(1, 2, 2)),
        optimizer=functools.partial(torch.optim.Adam, lr=1e-3),
    )
    game.train()
    z = torch.randn(8, 4)
    running_mean = game.generator.net[1].running_mean.clone()
    rng = torch.random.get_rng_state()
    first = game.sample(z)
    assert torch.equal(first, game.sample(z))  # no dropout draws, running statistics not updated
    assert not first.requires_grad
    assert game.generator.training  # back in training mode
    assert torch.equal(game.generator.net[1].running_mean, running_mean)
    assert torch.equal(torch.random.get_rng_state(), rng)  # the training noise stream is untouched
    assert not torch.equal(first, game.generator(z))  # in training mode the same z gives other images


class CountingAugment(nn.Module):
    """Records the batch sizes it sees and shifts images by a constant, so its effect is visible."""

    def __init__(self):
        super().__init__()
        self.sizes = []

    def forward(self, images):
        self.sizes.append(images.size(0))
        return images + 0.5


def test_augmentation_reaches_every_input_of_d_in_both_updates_and_passes_gradients(tmp_path):
    augment = CountingAugment()
    cfg = compose_config([*FAST, "trainer.max_epochs=1", "d_steps=2"], run_dir=tmp_path)
    trainer, _, datamodule = build(cfg)
    game = build_game_with(cfg, augment=augment)
    before = [p.clone() for p in game.generator.parameters()]
    trainer.fit(game, datamodule=datamodule)
    batch = cfg.dataset.batch_size
    # Per batch: two D steps on real + fake (2n images), then the G step on fake (n).
    assert augment.sizes == [2 * batch, 2 * batch, batch] * trainer.num_training_batches
    assert all(not torch.equal(a, b) for a, b in zip(before, game.generator.parameters(), strict=True))


def build_game_with(cfg, **options):
    from handwriting_gan.config import instantiate

    return instantiate(cfg.model, **options)


def test_ema_weights_differ_from_the_raw_ones_and_are_the_ones_sampled_and_saved(tmp_path):
    from handwriting_gan.models.generator_file import load_generator
    from handwriting_gan.train import train

    cfg = compose_config([*FAST, "model.ema_decay=0.9", "model.ema_start=2"], run_dir=tmp_path)
    train(cfg)
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    raw = {k.removeprefix("generator."): v for k, v in state.items() if k.startswith("generator.")}
    averaged = {k.removeprefix("ema.module."): v for k, v in state.items() if k.startswith("ema.module.")}
    assert raw.keys() == averaged.keys()
    assert any(not torch.equal(raw[k], averaged[k]) for k in raw)
    saved, _ = load_generator(tmp_path / "generator.pt")
    assert all(torch.equal(saved.state_dict()[k], averaged[k]) for k in averaged)


def test_ema_follows_the_raw_weights_until_it_starts():
    game = GAN(
        MLPGenerator(latent_dim=4, hidden=[8], image_shape=(1, 2, 2)),
        MLPDiscriminator(hidden=[4], image_shape=(1, 2, 2)),
        optimizer=functools.partial(torch.optim.Adam, lr=1e-3),
        ema_decay=0.999,
        ema_start=10,
    )
    with torch.no_grad():
        for p in game.generator.parameters():
            p.add_(1.0)
    game.ema.follow(game.generator, batches=0)  # 0 < ema_start: a copy, not an average with the start
    assert all(
        torch.equal(a, b)
        for a, b in zip(game.ema.module.parameters(), game.generator.parameters(), strict=True)
    )


class RecordingDiscriminator(Discriminator):
    """An MLP D, optionally with batch norm, that records the batch sizes it is called with."""

    def __init__(self, batch_norm: bool):
        super().__init__(image_shape=(1, 28, 28))
        norm = [nn.BatchNorm1d(16)] if batch_norm else []
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 16), *norm, nn.LeakyReLU(0.2), nn.Linear(16, 1))
        self.sizes = []

    def forward(self, images, labels=None):
        self.sizes.append(images.size(0))
        return self.net(images).squeeze(1)


def test_a_batch_norm_discriminator_sees_real_and_generated_images_apart(tmp_path):
    """With batch norm, D on a mixed batch is another function than D on generated images alone (the
    G step): the players stop playing one game (a DCGAN's D and G losses both fell to ~0.002)."""
    cfg = compose_config([*FAST, "trainer.max_epochs=1"], run_dir=tmp_path)
    batch = cfg.dataset.batch_size
    for batch_norm, d_step in ((False, [2 * batch]), (True, [batch, batch])):
        trainer, _, datamodule = build(cfg)
        discriminator = RecordingDiscriminator(batch_norm)
        game = build_game_with(cfg, discriminator=discriminator)
        trainer.fit(game, datamodule=datamodule)
        assert discriminator.sizes[: len(d_step) + 1] == [*d_step, batch]  # then the G step


def test_mode_seeking_pairs_share_a_class_and_pushes_g_apart():
    """With mode_seeking, generated pair (i, i + n/2) is asked for the same class, and G's loss grows
    with the weight by exactly the penalty of the images it made from that noise."""
    torch.manual_seed(0)
    generator = MLPGenerator(latent_dim=4, hidden=[8], image_shape=(1, 2, 2), num_classes=3)
    asked = []
    generator.register_forward_hook(lambda module, args, out: asked.append(args[1].clone()))
    real, labels = torch.rand(6, 1, 2, 2) * 2 - 1, torch.tensor([0, 1, 2, 2, 1, 0])
    losses = {}
    for weight in (0.0, 1.0, 3.0):
        game = GAN(
            copy.deepcopy(generator),
            MLPDiscriminator(hidden=[4], image_shape=(1, 2, 2), num_classes=3),
            optimizer=functools.partial(torch.optim.SGD, lr=0.0),
            mode_seeking=weight,
        )
        opt_g, opt_d = game.configure_optimizers()
        torch.manual_seed(1)
        losses[weight] = game._step(real, labels, opt_g, opt_d, torch.Tensor.backward)[1].item()
    assert torch.equal(asked[-1], torch.tensor([0, 1, 2, 0, 1, 2]))
    assert torch.equal(asked[0], labels)  # off: the real batch's labels, as before
    torch.manual_seed(1)
    z = torch.randn(6, 4)
    with torch.no_grad():
        penalty = mode_seeking_penalty(z, generator(z, asked[-1])).item()
    assert losses[3.0] - losses[1.0] == pytest.approx(2.0 * penalty, rel=1e-4)
