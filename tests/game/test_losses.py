"""The losses of the game (game/losses.py): each one's value on logits worked out by hand, an unknown name
refused with the choices, a new entry played by name, and the mode-seeking term."""

import functools
import math

import pytest
import torch

from handwriting_gan.errors import ConfigError
from handwriting_gan.game import GAN, losses
from handwriting_gan.game.losses import LOSSES, Loss, loss_named, mode_seeking_penalty
from handwriting_gan.models.mlp import MLPDiscriminator, MLPGenerator

LN3 = math.log(3.0)  # the logit of probability 0.75


def test_bce_scores_logits_as_the_study_does():
    bce = loss_named("bce")
    zero = torch.zeros(4)
    # D(x) = D(G(z)) = 1/2: -log(1/2) for each half of D's loss, and for G's.
    assert bce.d_loss(zero, zero).item() == pytest.approx(2 * math.log(2))
    assert bce.g_loss(zero).item() == pytest.approx(math.log(2))
    # D(x) = D(G(z)) = 3/4: D pays -log(3/4) on the real image and -log(1/4) on the generated one.
    three_quarters = torch.full((2,), LN3)
    assert bce.d_loss(three_quarters, three_quarters).item() == pytest.approx(math.log(4 / 3) + math.log(4))
    assert bce.g_loss(three_quarters).item() == pytest.approx(math.log(4 / 3))  # non-saturating -log D(G(z))


def test_hinge_scores_logits_with_a_margin_of_one():
    hinge = loss_named("hinge")
    real, fake = torch.tensor([0.5, 2.0]), torch.tensor([-0.5, 1.0])
    # mean(max(0, 1 - [0.5, 2])) + mean(max(0, 1 + [-0.5, 1])) = 0.25 + 1.25
    assert hinge.d_loss(real, fake).item() == pytest.approx(1.5)
    assert hinge.g_loss(fake).item() == pytest.approx(-0.25)
    # Past the margin D's loss is 0: it no longer pushes logits it already separates.
    assert hinge.d_loss(torch.tensor([1.0, 3.0]), torch.tensor([-1.0, -2.0])).item() == 0.0


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_is_a_scalar_with_gradients_for_both_players(name):
    real = torch.randn(6, requires_grad=True)
    fake = torch.randn(6, requires_grad=True)
    loss = loss_named(name)
    d_loss, g_loss = loss.d_loss(real, fake), loss.g_loss(fake)
    assert d_loss.shape == g_loss.shape == ()
    d_grads = torch.autograd.grad(d_loss, (real, fake))
    assert all(g.abs().sum() > 0 for g in d_grads)
    assert torch.autograd.grad(g_loss, fake)[0].abs().sum() > 0


def test_an_unknown_loss_is_refused_naming_the_value_and_the_choices():
    with pytest.raises(ConfigError, match=r"^model\.loss=wgan is not allowed: expected one of bce, hinge\.$"):
        loss_named("wgan")
    with pytest.raises(ConfigError, match=r"model\.loss=wgan is not allowed"):
        GAN(
            MLPGenerator(latent_dim=4, hidden=[8], image_shape=(1, 2, 2)),
            MLPDiscriminator(hidden=[4], image_shape=(1, 2, 2)),
            optimizer=functools.partial(torch.optim.Adam, lr=1e-3),
            loss="wgan",
        )


def test_a_new_entry_is_played_by_name_with_no_other_change(monkeypatch):
    """A loss is one entry of LOSSES: the game plays it by name (here: a least-squares loss)."""
    calls = []

    def d_loss(real_logits, fake_logits):
        calls.append("d")
        return ((real_logits - 1) ** 2).mean() + (fake_logits**2).mean()

    def g_loss(fake_logits):
        calls.append("g")
        return ((fake_logits - 1) ** 2).mean()

    monkeypatch.setitem(losses.LOSSES, "least_squares", Loss(d_loss, g_loss))
    game = GAN(
        MLPGenerator(latent_dim=4, hidden=[8], image_shape=(1, 2, 2)),
        MLPDiscriminator(hidden=[4], image_shape=(1, 2, 2)),
        optimizer=functools.partial(torch.optim.SGD, lr=0.0),
        loss="least_squares",
        d_steps=2,
    )
    opt_g, opt_d = game.configure_optimizers()
    stats = game._step(torch.rand(4, 1, 2, 2) * 2 - 1, None, opt_g, opt_d, torch.Tensor.backward)
    assert calls == ["d", "d", "g"]
    assert torch.isfinite(stats).all()


def test_mode_seeking_penalty_is_the_inverse_image_to_noise_gap_ratio():
    z = torch.tensor([[0.0, 0.0], [1.0, 3.0], [2.0, 2.0], [0.0, 1.0]])
    images = 3.0 * z.view(4, 1, 1, 2)  # every pair's image gap is 3x its noise gap
    assert mode_seeking_penalty(z, images).item() == pytest.approx(1 / 3, rel=1e-4)
    collapsed = torch.zeros(4, 1, 1, 2)  # one image whatever z
    assert mode_seeking_penalty(z, collapsed).item() == pytest.approx(1e5)
