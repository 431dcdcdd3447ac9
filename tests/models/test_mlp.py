"""The study's MLP networks: depth and widths from the config, shapes and ranges, bad widths."""

import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from handwriting_gan.errors import ConfigError
from handwriting_gan.models.mlp import MLPDiscriminator, MLPGenerator


def linear_widths(module: nn.Module) -> list[int]:
    return [m.out_features for m in module.modules() if isinstance(m, nn.Linear)]


@pytest.mark.parametrize(
    ("model", "g_hidden", "d_hidden"),
    [
        ("mlp3", [256, 512, 1024], [1024, 512, 256]),
        ("mlp4", [256, 512, 1024, 1024], [1024, 1024, 512, 256]),
    ],
)
def test_model_group_sets_depth_and_widths(compose, model, g_hidden, d_hidden):
    cfg = compose([f"model={model}"])
    generator = instantiate(cfg.model.generator)
    discriminator = instantiate(cfg.model.discriminator)
    assert generator.num_hidden_layers == len(g_hidden)
    assert discriminator.num_hidden_layers == len(d_hidden)
    assert linear_widths(generator) == [*g_hidden, 28 * 28]
    assert linear_widths(discriminator) == [*d_hidden, 1]
    assert sum(isinstance(m, nn.Dropout) and m.p == 0.3 for m in discriminator.modules()) == len(d_hidden)


def test_other_depths_need_only_a_config_override(compose):
    cfg = compose(["model.generator.hidden=[64,64,64,64,64]", "model.discriminator.hidden=[32]"])
    assert instantiate(cfg.model.generator).num_hidden_layers == 5
    assert instantiate(cfg.model.discriminator).num_hidden_layers == 1


def test_generator_maps_noise_to_images_in_tanh_range():
    generator = MLPGenerator(100, [32, 64], (1, 28, 28))
    images = generator(torch.randn(7, 100) * 50)  # large noise saturates tanh
    assert images.shape == (7, 1, 28, 28)
    assert images.min() >= -1.0 and images.max() <= 1.0
    assert images.abs().max() > 0.99


def test_discriminator_returns_one_logit_per_image_and_drops_out_only_in_training():
    discriminator = MLPDiscriminator([64], (1, 28, 28), dropout=0.3)
    images = torch.randn(5, 1, 28, 28)
    assert discriminator(images).shape == (5,)
    discriminator.eval()
    assert torch.equal(discriminator(images), discriminator(images))
    discriminator.train()
    assert not torch.equal(discriminator(images), discriminator(images))


@pytest.mark.parametrize("hidden", [[], [256, 0], [-1]])
def test_bad_widths_name_the_key(hidden):
    with pytest.raises(ConfigError, match=r"model\.generator\.hidden"):
        MLPGenerator(100, hidden, (1, 28, 28))


def test_activation_is_a_model_option(compose):
    relu = instantiate(compose(["model.generator.activation_fn=relu"]).model.generator)
    assert any(isinstance(m, nn.ReLU) for m in relu.modules())
    default = instantiate(compose([]).model.generator)
    assert any(isinstance(m, nn.LeakyReLU) for m in default.modules())
    assert not any(isinstance(m, nn.ReLU) for m in default.modules())


def test_conditional_mlp_takes_labels_and_they_change_the_output():
    generator = MLPGenerator(latent_dim=8, hidden=[16], image_shape=(1, 4, 4), num_classes=3)
    discriminator = MLPDiscriminator(hidden=[16], image_shape=(1, 4, 4), num_classes=3)
    z = torch.randn(2, 8)
    images = generator(z, torch.tensor([0, 0]))
    assert not torch.equal(images, generator(z, torch.tensor([0, 2])))
    assert discriminator(images, torch.tensor([1, 2])).shape == (2,)
    with pytest.raises(ValueError, match="class-conditional"):
        generator(z)
