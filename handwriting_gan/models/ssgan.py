"""The networks of the semi-supervised GAN of Salimans et al. (2016, "Improved Techniques for Training
GANs"): the study's MLP family, with a discriminator that also names the class.

Discriminator: image -> Gaussian noise -> [weight-normalised Linear, ReLU, Gaussian noise] per width ->
weight-normalised Linear to K class logits. "Real" is their log-sum-exp (D(x) = Z / (Z + 1) with
Z = sum_k exp(l_k)), so `forward` keeps the contract's one logit of "real" per image and the last hidden
layer is what the generator's feature matching compares.
Generator: z -> [Linear, BatchNorm, softplus] per width -> weight-normalised Linear -> tanh.

Weight normalisation starts from data (Salimans & Kingma 2016): the first training batch sets each of D's
layers' scale and bias so its outputs have zero mean and unit variance, and the hidden layers' scales stay
there (only the class logits' scale learns), as in the paper's MNIST code; public ports that left this out
reported far lower accuracy. D reads pixels in [0, 1], the scale its noise levels were set for.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from handwriting_gan.errors import ConfigError
from handwriting_gan.models.contract import ClassifyingDiscriminator, Generator
from handwriting_gan.models.mlp import _check_widths


class _WeightNormLinear(torch.autograd.Function):
    """x w^T + b with w = g * v / |v| per output row, computed as (x v^T) * (g / |v|) + b: the scale goes on
    the batch's outputs, fewer numbers than the weights, and the backward pass gives v's gradient in one
    product and one fused update, (dL/d(x v^T))^T x - (sum_n dL/dout * x v^T) g / |v|^3 * v. Against
    autograd through w (a weight-sized product, then the norm's backward), a semi-supervised step of the
    MNIST networks takes 9% less time (median of 12 interleaved runs on a 2-core CPU).
    tests/game/test_semi.py checks the outputs and gradients against autograd's."""

    @staticmethod
    def forward(ctx, x, v, g, bias):
        inv_norm = v.norm(dim=1).reciprocal()
        scale = g * inv_norm
        product = F.linear(x, v)
        ctx.save_for_backward(x, v, product, scale, inv_norm)
        return torch.addcmul(bias, product, scale)

    @staticmethod
    def backward(ctx, grad):
        x, v, product, scale, inv_norm = ctx.saved_tensors
        grad_product = grad * scale
        grad_x = grad_product @ v if ctx.needs_input_grad[0] else None
        grad_v = grad_g = None
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            grad_scale = (grad * product).sum(0)
            if ctx.needs_input_grad[2]:
                grad_g = grad_scale * inv_norm
            if ctx.needs_input_grad[1]:
                grad_v = torch.addcmul(
                    grad_product.T @ x, v, (grad_scale * scale * inv_norm.square()).neg().unsqueeze(1)
                )
        grad_bias = grad.sum(0) if ctx.needs_input_grad[3] else None
        return grad_x, grad_v, grad_g, grad_bias


class WNLinear(nn.Module):
    """A Linear layer with weight normalisation, w = g * v / |v| per output. With `data_init`, the first
    batch it sees in training mode sets g and the bias so that its outputs have zero mean and unit
    variance; `train_scale=False` then keeps g fixed, as the paper's hidden layers do (only the class
    logits' scale learns)."""

    def __init__(
        self, width_in: int, width_out: int, train_scale: bool = True, data_init: bool = True
    ) -> None:
        super().__init__()
        self.v = nn.Parameter(torch.randn(width_out, width_in) * 0.1)
        self.g = nn.Parameter(torch.ones(width_out), requires_grad=train_scale)
        self.bias = nn.Parameter(torch.zeros(width_out))
        # A buffer, so a checkpoint or a saved classifier carries it: a resumed run never re-initialises.
        # A float (1: done) so a moving average of the network's buffers (game/semi.py) leaves it intact.
        self.register_buffer("initialised", torch.tensor(0.0 if data_init else 1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and not bool(self.initialised):
            self._initialise(x)
        return _WeightNormLinear.apply(x, self.v, self.g, self.bias)

    @torch.no_grad()
    def _initialise(self, x: torch.Tensor) -> None:
        out = F.linear(x, self.v / self.v.norm(dim=1, keepdim=True))
        mean, std = out.mean(0), out.std(0, unbiased=False) + 1e-6
        self.g.copy_(1.0 / std)
        self.bias.copy_(-mean / std)
        self.initialised.fill_(1.0)


class GaussianNoise(nn.Module):
    """Adds N(0, std^2) noise in training mode only (the paper's regulariser in place of dropout)."""

    def __init__(self, std: float) -> None:
        super().__init__()
        if float(std) < 0:
            raise ConfigError(f"model.discriminator noise std={std} must be 0 (none) or positive, e.g. 0.5.")
        self.std = float(std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.std == 0:
            return x
        return x.add(torch.randn_like(x), alpha=self.std)


class SSGANDiscriminator(ClassifyingDiscriminator):
    """K class logits from an image; the contract's "real" logit is their log-sum-exp."""

    def __init__(
        self,
        hidden: Sequence[int],
        image_shape: Sequence[int],
        num_labels: int,
        input_noise: float = 0.3,
        hidden_noise: float = 0.5,
        weight_norm: bool = True,
    ) -> None:
        super().__init__(image_shape, num_labels)
        width_in = math.prod(self.image_shape)
        layers: list[nn.Module] = [nn.Flatten(), GaussianNoise(input_noise)]
        for width in _check_widths("discriminator", hidden):
            layers += [_linear(width_in, width, weight_norm, train_scale=False), nn.ReLU()]
            layers.append(GaussianNoise(hidden_noise))
            width_in = width
        # The features G matches are the last hidden layer's, before its noise (the paper's).
        self.features = nn.Sequential(*layers[:-1])
        self.head = nn.Sequential(layers[-1], _linear(width_in, self.num_labels, weight_norm))

    def classify(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Pixels in [0, 1], the paper's scale: its noise levels are relative to it.
        features = self.features(images.add(1.0).mul(0.5))
        return self.head(features), features


class SSGANConvDiscriminator(ClassifyingDiscriminator):
    """The convolutional variant: the paper's CIFAR-10 discriminator narrowed for a CPU. [0, 1] pixels ->
    dropout -> per width: two 3x3 convolutions (the second with stride 2) -> dropout -> a 3x3 valid
    convolution and a 1x1 one at the last width -> global average pooling (the features G matches) ->
    K class logits; LeakyReLU(0.2), weight normalisation on every layer."""

    def __init__(
        self,
        channels: Sequence[int],
        image_shape: Sequence[int],
        num_labels: int,
        input_dropout: float = 0.2,
        dropout: float = 0.5,
    ) -> None:
        super().__init__(image_shape, num_labels)
        widths = _check_widths("discriminator", channels)
        if not (0 <= float(input_dropout) < 1 and 0 <= float(dropout) < 1):
            raise ConfigError(
                f"model.discriminator dropout={input_dropout}, {dropout}: each must be in [0, 1)."
            )
        norm = nn.utils.parametrizations.weight_norm
        act = nn.LeakyReLU(0.2)
        layers: list[nn.Module] = [nn.Dropout(input_dropout)]
        width_in = self.image_shape[0]
        for width in widths:
            layers += [norm(nn.Conv2d(width_in, width, 3, padding=1)), act]
            layers += [norm(nn.Conv2d(width, width, 3, stride=2, padding=1)), act, nn.Dropout(dropout)]
            width_in = width
        layers += [norm(nn.Conv2d(width_in, width_in, 3)), act, norm(nn.Conv2d(width_in, width_in, 1)), act]
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.head = norm(nn.Linear(width_in, self.num_labels))

    def classify(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(images.add(1.0).mul(0.5))
        return self.head(features), features


class SSGANGenerator(Generator):
    """Unconditional: the classes come from the discriminator, which labels what G draws if asked."""

    def __init__(
        self,
        latent_dim: int,
        hidden: Sequence[int],
        image_shape: Sequence[int],
        num_classes: int = 0,
        weight_norm: bool = True,
    ) -> None:
        super().__init__(latent_dim, image_shape, num_classes)
        if self.conditional:
            raise ConfigError(
                "model.generator.num_classes must be 0 for the semi-supervised GAN: its generator is "
                "unconditional, and the discriminator names the classes (model.discriminator.num_labels)."
            )
        layers: list[nn.Module] = []
        width_in = self.latent_dim
        for width in _check_widths("generator", hidden):
            layers += [nn.Linear(width_in, width), nn.BatchNorm1d(width), nn.Softplus()]
            width_in = width
        # The output layer's scale starts at 1 and learns, without a data-dependent start (the paper's).
        layers += [_linear(width_in, math.prod(self.image_shape), weight_norm, data_init=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(z).view(z.size(0), *self.image_shape)


def _linear(width_in: int, width_out: int, weight_norm: bool, **options) -> nn.Module:
    return WNLinear(width_in, width_out, **options) if weight_norm else nn.Linear(width_in, width_out)
