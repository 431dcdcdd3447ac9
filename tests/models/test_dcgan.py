"""The DCGAN networks: shapes and ranges for several image sizes, the divisibility rule, class
conditioning that changes the output and is honoured after a short training, spectral norm, the configs."""

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn
from torch.nn.functional import binary_cross_entropy_with_logits
from torch.nn.utils import parametrize

from handwriting_gan.errors import ConfigError
from handwriting_gan.models.contract import Discriminator, Generator
from handwriting_gan.models.dcgan import DCGANDiscriminator, DCGANGenerator

MODEL_CONF = Path(__file__).parents[2] / "handwriting_gan" / "conf" / "model"


@pytest.mark.parametrize(
    ("image_shape", "stages"),
    [((1, 28, 28), 2), ((1, 32, 32), 3), ((1, 64, 64), 4), ((3, 32, 32), 2), ((1, 28, 56), 2)],
)
def test_networks_map_to_images_in_tanh_range_and_one_logit_each(image_shape, stages):
    torch.manual_seed(0)
    generator = DCGANGenerator(16, image_shape, base_channels=4, num_upsample=stages)
    discriminator = DCGANDiscriminator(image_shape, base_channels=4, num_downsample=stages)
    assert isinstance(generator, Generator) and isinstance(discriminator, Discriminator)
    images = generator(torch.randn(5, 16) * 50)  # large noise pushes tanh towards its limits
    assert images.shape == (5, *image_shape)
    assert images.min() >= -1.0 and images.max() <= 1.0
    logits = discriminator(images)
    assert logits.shape == (5,)
    assert torch.isfinite(logits).all()


def test_unconditional_networks_ignore_labels():
    torch.manual_seed(0)
    generator = DCGANGenerator(8, (1, 28, 28), base_channels=4).eval()
    discriminator = DCGANDiscriminator((1, 28, 28), base_channels=4).eval()
    z, images = torch.randn(3, 8), torch.rand(3, 1, 28, 28) * 2 - 1
    assert torch.equal(generator(z), generator(z, torch.tensor([0, 1, 2])))
    assert torch.equal(discriminator(images), discriminator(images, torch.tensor([0, 1, 2])))


@pytest.mark.parametrize(("image_shape", "stages"), [((1, 28, 28), 3), ((1, 30, 32), 2), ((3, 32, 20), 3)])
def test_sides_not_divisible_by_the_upsampling_name_the_key_and_the_rule(image_shape, stages):
    with pytest.raises(ConfigError, match=r"model\.generator\.image_shape=.*divisible by 2\*\*num_upsample"):
        DCGANGenerator(100, image_shape, num_upsample=stages)


def test_bad_options_name_their_key():
    with pytest.raises(ConfigError, match=r"model\.discriminator\.conditioning='film'.*projection, concat"):
        DCGANDiscriminator((1, 28, 28), 10, conditioning="film")
    with pytest.raises(ConfigError, match=r"model\.generator\.base_channels=0"):
        DCGANGenerator(100, (1, 28, 28), base_channels=0)
    with pytest.raises(ConfigError, match=r"model\.discriminator\.num_downsample=6"):
        DCGANDiscriminator((1, 28, 28), num_downsample=6)
    with pytest.raises(ConfigError, match=r"model\.discriminator\.dropout=1\.5"):
        DCGANDiscriminator((1, 28, 28), dropout=1.5)


def test_conditional_generator_draws_different_images_for_different_labels_from_the_same_noise():
    torch.manual_seed(0)
    generator = DCGANGenerator(16, (1, 28, 28), num_classes=10, base_channels=4).eval()
    z = torch.randn(1, 16).expand(10, -1)
    images = generator(z, torch.arange(10))
    differences = (images[:, None] - images[None]).abs().flatten(2).amax(dim=2)
    assert (differences + torch.eye(10) > 1e-4).all()  # every pair of classes differs


@pytest.mark.parametrize("conditioning", ["projection", "concat"])
def test_conditional_discriminator_scores_depend_on_the_label(conditioning):
    torch.manual_seed(0)
    discriminator = DCGANDiscriminator((1, 28, 28), 10, base_channels=4, conditioning=conditioning).eval()
    images = torch.rand(1, 1, 28, 28).expand(10, -1, -1, -1) * 2 - 1
    logits = discriminator(images, torch.arange(10))
    assert logits.unique().numel() == 10


@pytest.mark.parametrize("conditioning", ["projection", "concat"])
def test_conditional_networks_called_without_labels_raise(conditioning):
    generator = DCGANGenerator(16, (1, 28, 28), num_classes=3, base_channels=4)
    discriminator = DCGANDiscriminator((1, 28, 28), 3, base_channels=4, conditioning=conditioning)
    with pytest.raises(ValueError, match="class-conditional"):
        generator(torch.randn(2, 16))
    with pytest.raises(ValueError, match="class-conditional"):
        discriminator(torch.zeros(2, 1, 28, 28))


def spectrally_normed(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if parametrize.is_parametrized(m, "weight")]


@pytest.mark.parametrize("conditioning", ["projection", "concat"])
def test_spectral_norm_wraps_every_weight_layer_bounds_its_norm_and_drops_batch_norm(conditioning):
    torch.manual_seed(0)
    plain = DCGANDiscriminator((1, 28, 28), 10, base_channels=8, conditioning=conditioning)
    assert spectrally_normed(plain) == []
    assert any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())

    normed = DCGANDiscriminator(
        (1, 28, 28), 10, base_channels=8, conditioning=conditioning, spectral_norm=True
    )
    weighted = [m for m in normed.modules() if isinstance(m, nn.Conv2d | nn.Linear | nn.Embedding)]
    assert len(weighted) == (4 if conditioning == "projection" else 3)  # 2 convs, head (, embedding)
    assert spectrally_normed(normed) == weighted
    assert not any(isinstance(m, nn.BatchNorm2d) for m in normed.modules())
    # Each forward pass in training mode runs a power iteration; a few are enough for sigma ~ 1.
    images, labels = torch.rand(4, 1, 28, 28), torch.arange(4)
    for _ in range(30):
        normed(images, labels)
    for module in weighted:
        sigma = torch.linalg.matrix_norm(module.weight.detach().flatten(1), ord=2)
        assert sigma == pytest.approx(1.0, abs=0.05)
    # Batch norm stays available on request.
    both = DCGANDiscriminator((1, 28, 28), spectral_norm=True, batch_norm=True, base_channels=8)
    assert any(isinstance(m, nn.BatchNorm2d) for m in both.modules())


def test_dropout_makes_the_discriminator_stochastic_only_in_training():
    discriminator = DCGANDiscriminator((1, 28, 28), base_channels=4, dropout=0.5)
    images = torch.rand(4, 1, 28, 28)
    assert not torch.equal(discriminator(images), discriminator(images))
    discriminator.eval()
    assert torch.equal(discriminator(images), discriminator(images))


def test_generator_batch_norm_can_be_turned_off():
    generator = DCGANGenerator(16, (1, 28, 28), base_channels=4, batch_norm=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in generator.modules())


def half_bright_images(labels: torch.Tensor, size: int) -> torch.Tensor:
    """Class 0: the left half bright, class 1: the right half; background -1, plus noise."""
    images = torch.full((labels.numel(), 1, size, size), -1.0)
    images[labels == 0, :, :, : size // 2] = 1.0
    images[labels == 1, :, :, size // 2 :] = 1.0
    return (images + 0.3 * torch.randn_like(images)).clamp(-1.0, 1.0)


@pytest.fixture
def one_thread():
    # Layers this small gain nothing from a second thread, and when another process holds the other core,
    # two threads wait on each other: 300 steps took 7 s on one thread and 100 s on two.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_conditional_dcgan_trained_briefly_draws_the_class_it_is_asked_for(one_thread):
    torch.manual_seed(0)
    size, latent, batch = 16, 16, 32
    generator = DCGANGenerator(latent, (1, size, size), num_classes=2, base_channels=8, embed_dim=8)
    discriminator = DCGANDiscriminator((1, size, size), 2, base_channels=8)
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    ones, zeros = torch.ones(batch), torch.zeros(batch)
    for _ in range(300):
        labels = torch.randint(0, 2, (batch,))
        real = half_bright_images(labels, size)
        fake = generator(torch.randn(batch, latent), labels)
        loss_real = binary_cross_entropy_with_logits(discriminator(real, labels), ones)
        loss_fake = binary_cross_entropy_with_logits(discriminator(fake.detach(), labels), zeros)
        loss_d = loss_real + loss_fake
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = binary_cross_entropy_with_logits(discriminator(fake, labels), ones)
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()

    generator.eval()
    with torch.no_grad():
        z = torch.randn(200, latent)
        for label in (0, 1):
            images = generator(z, torch.full((200,), label))
            left = images[..., : size // 2].mean(dim=(1, 2, 3))
            right = images[..., size // 2 :].mean(dim=(1, 2, 3))
            honoured = (left > right) if label == 0 else (right > left)
            assert honoured.float().mean() > 0.9, f"label {label}: {honoured.float().mean():.2f} honoured"
            assert images.std(dim=0).mean() > 0.005  # different noise still gives different images


def test_model_configs_build_the_networks(compose):
    cdcgan = OmegaConf.load(MODEL_CONF / "cdcgan.yaml")
    assert list(cdcgan.defaults) == ["dcgan", "_self_"]
    for model, num_classes in [("dcgan", 0), ("cdcgan", 10)]:
        cfg = compose([f"model={model}"])
        assert cfg.model.keys() == compose(["model=mlp3"]).model.keys()
        if model == "cdcgan":
            assert cfg.model.generator.num_classes == "auto"
            cfg.model.generator.num_classes = 10  # what the run fills in for `auto`
        generator = instantiate(cfg.model.generator)
        discriminator = instantiate(cfg.model.discriminator)
        labels = torch.arange(2) if num_classes else None
        images = generator(torch.randn(2, 100), labels)
        assert images.shape == (2, 1, 28, 28)
        assert discriminator(images, labels).shape == (2,)
        assert generator.num_classes == discriminator.num_classes == num_classes
