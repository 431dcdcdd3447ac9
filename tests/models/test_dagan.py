"""The image-conditional augmenter's networks (models/dagan.py) and their contract: G(z, sources) keeps
the source's shape and uses both inputs, D scores pairs, and bad settings are clear errors."""

import pytest
import torch

from handwriting_gan.errors import ConfigError
from handwriting_gan.models.contract import ImageGenerator, PairDiscriminator, image_conditional
from handwriting_gan.models.dagan import PairCritic, UNetAugmenter

SHAPE = (1, 28, 28)


def test_the_generator_varies_a_source_image_into_an_image_of_its_shape():
    generator = UNetAugmenter(latent_dim=16, image_shape=SHAPE, channels=16)
    sources = torch.rand(5, *SHAPE) * 2 - 1
    out = generator(torch.randn(5, 16), sources)
    assert out.shape == (5, *SHAPE)
    assert out.min() >= -1 and out.max() <= 1
    assert isinstance(generator, ImageGenerator) and image_conditional(generator)
    assert generator.num_classes == 0 and generator.conditioning == "image"


def trained_looking(generator: UNetAugmenter) -> UNetAugmenter:
    """The warp heads start at zero (the identity); give them weights, as training does."""
    if generator.output == "warp":
        for head in (generator.coarse, generator.fine):
            torch.nn.init.normal_(head.weight, std=0.1)
    return generator


@pytest.mark.parametrize("integrate", [0, 6])
def test_the_warp_head_starts_as_the_identity(integrate):
    generator = UNetAugmenter(latent_dim=8, image_shape=SHAPE, channels=8, integrate=integrate).eval()
    sources = torch.rand(3, *SHAPE) * 2 - 1
    assert torch.allclose(generator(torch.randn(3, 8), sources), sources, atol=1e-4)


@pytest.mark.parametrize("output", ["warp", "pixels"])
def test_the_output_depends_on_the_noise_and_on_the_source(output):
    torch.manual_seed(0)
    generator = trained_looking(
        UNetAugmenter(latent_dim=16, image_shape=SHAPE, channels=16, output=output)
    ).eval()
    sources = torch.rand(2, *SHAPE) * 2 - 1
    z = torch.randn(2, 16)
    base = generator(z, sources)
    assert not torch.allclose(base, generator(torch.randn(2, 16), sources))
    assert not torch.allclose(base, generator(z, sources.flip(0)))
    # Group norm, not batch norm: an image's variation does not depend on the others in its batch.
    assert torch.allclose(base[:1], generator(z[:1], sources[:1]), atol=1e-5)


@pytest.mark.parametrize("output", ["warp", "pixels"])
def test_gradients_reach_every_generator_weight(output):
    generator = trained_looking(UNetAugmenter(latent_dim=8, image_shape=SHAPE, channels=8, output=output))
    generator(torch.randn(3, 8), torch.rand(3, *SHAPE)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in generator.parameters())


def test_the_critic_scores_pairs():
    critic = PairCritic(image_shape=SHAPE, channels=8)
    a, b = torch.rand(4, *SHAPE), torch.rand(4, *SHAPE)
    logits = critic(a, b)
    assert logits.shape == (4,)
    assert torch.allclose(logits, critic.pairs(torch.cat([a, b], dim=1)))
    assert isinstance(critic, PairDiscriminator) and image_conditional(critic)


def test_wrong_sources_are_a_clear_error():
    generator = UNetAugmenter(latent_dim=8, image_shape=SHAPE, channels=8)
    with pytest.raises(ValueError, match="source images of shape"):
        generator(torch.randn(2, 8), torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="one each"):
        generator(torch.randn(3, 8), torch.rand(2, *SHAPE))


def test_a_warp_keeps_the_sources_strokes_within_its_range():
    """Moved by at most warp_range of the side: a one-pixel dot stays within that many pixels."""
    generator = trained_looking(UNetAugmenter(latent_dim=8, image_shape=SHAPE, channels=8, warp_range=0.1))
    source = -torch.ones(1, *SHAPE)
    source[0, 0, 14, 14] = 1.0
    with torch.no_grad():
        out = generator(torch.randn(1, 8), source)
    ink = torch.nonzero(out[0, 0] > -0.5)
    reach = 1.5 * 0.1 * 28 + 2  # coarse + half-range fine field, plus the thickness step and bilinear spread
    assert len(ink) and (ink - torch.tensor([14, 14])).abs().max() <= reach


def folded(displacement: torch.Tensor) -> float:
    """The fraction of pixels where identity + displacement (grid units, (N, 2, H, W)) folds: its
    Jacobian determinant, by central differences, is not positive."""
    step = 2 / displacement.shape[-1]
    dx, dy = displacement[:, 0], displacement[:, 1]
    d_dcol = lambda f: (f[:, 1:-1, 2:] - f[:, 1:-1, :-2]) / (2 * step)  # noqa: E731
    d_drow = lambda f: (f[:, 2:, 1:-1] - f[:, :-2, 1:-1]) / (2 * step)  # noqa: E731
    det = (1 + d_dcol(dx)) * (1 + d_drow(dy)) - d_drow(dx) * d_dcol(dy)
    return float((det <= 0).float().mean())


def test_an_integrated_warp_does_not_fold_where_the_raw_field_does():
    """A field as large as the warp head's (0.2 of the grid's span of 2) folds a sixth of the image used
    as a displacement; integrated by scaling and squaring, nowhere."""
    torch.manual_seed(0)
    field = torch.nn.functional.interpolate(torch.randn(4, 2, 7, 7), size=SHAPE[1:], mode="bilinear") * 0.2
    generator = UNetAugmenter(latent_dim=8, image_shape=SHAPE, channels=8, integrate=6)
    assert folded(field) > 0.1
    assert folded(generator.exponentiate(field)) == 0.0


@pytest.mark.parametrize("integrate", [-1, 11, 2.5, True])
def test_integrate_must_be_a_small_whole_number(integrate):
    with pytest.raises(ConfigError, match="integrate=.* must be a whole number in"):
        UNetAugmenter(latent_dim=8, image_shape=SHAPE, integrate=integrate)


def test_an_unknown_output_head_is_refused():
    with pytest.raises(ConfigError, match="output='paint' must be one of warp, pixels"):
        UNetAugmenter(latent_dim=8, image_shape=SHAPE, output="paint")


@pytest.mark.parametrize("channels", [0, 12, True])
def test_channels_must_be_a_multiple_of_eight(channels):
    with pytest.raises(ConfigError, match="multiple of 8"):
        UNetAugmenter(latent_dim=8, image_shape=SHAPE, channels=channels)


def test_an_image_size_not_divisible_by_four_is_refused():
    with pytest.raises(ConfigError, match="divisible by 4"):
        PairCritic(image_shape=(1, 30, 30))
