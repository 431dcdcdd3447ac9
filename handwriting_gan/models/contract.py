"""The contract every generator and discriminator follows. The game, sample grids, `generator.pt`,
the metrics and export rely on these attributes and call signatures and on nothing model-specific.

A generator maps noise `z` of shape (N, latent_dim) (and, when `num_classes > 0`, int64 labels of
shape (N,)) to images in [-1, 1] of shape (N, *image_shape). A discriminator maps such images (and
labels when conditional) to one logit of "real" per image, shape (N,). An unconditional network
accepts `labels` and ignores it, so callers pass labels whenever they have them.

An image-conditional generator (an augmenter, e.g. model=dagan) derives from `ImageGenerator`: it maps
noise `z` and source images `x` in [-1, 1] of shape (N, *image_shape) to new images of x's classes,
`forward(z, sources)`, and has `num_classes = 0` (it knows no classes: it learned on some and is applied
to others). Its discriminator derives from `PairDiscriminator`: `forward(sources, candidates)` gives one
logit of "a real second image of the source's class" per pair, shape (N,). Their game (game/pairs.py)
trains on pairs of images of one class; `conditioning` says which kind a network is.

A discriminator that also classifies (the semi-supervised GAN, model=ssgan_mlp) derives from
`ClassifyingDiscriminator`: it is not conditioned on labels (`num_classes = 0`) but names one of
`num_labels` classes: `classify(images)` gives (class logits (N, num_labels), last hidden features (N, F)),
and its "real" logit is the log-sum-exp of the class logits. Its game is game/semi.py; a classifier file
(models/classifier_file.py) keeps it for `evaluate` and for labelling images.

A new model is one network file whose classes derive from `Generator` and `Discriminator` (or
`ImageGenerator` and `PairDiscriminator`), and one YAML file in `conf/model/` (see `conf/model/mlp3.yaml`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from handwriting_gan.errors import ConfigError

#: Activations a model config may name; the study's text gives G ReLU and D LeakyReLU(0.2).
ACTIVATIONS = ("relu", "leaky_relu", "elu", "gelu", "silu")


class _Player(nn.Module):
    """What both players share: the image shape and the number of classes they are conditioned on."""

    def __init__(self, image_shape: Sequence[int], num_classes: int = 0) -> None:
        super().__init__()
        shape = tuple(image_shape)
        if len(shape) != 3 or any(isinstance(s, bool) or int(s) <= 0 for s in shape):
            raise ConfigError(f"image_shape={list(shape)} must be three positive sizes [C, H, W].")
        if isinstance(num_classes, bool) or int(num_classes) < 0:
            raise ConfigError(
                f"num_classes={num_classes} must be 0 (unconditional) or the number of classes "
                f"(e.g. ${{dataset.num_classes}})."
            )
        self.image_shape: tuple[int, int, int] = tuple(int(s) for s in shape)
        self.num_classes = int(num_classes)

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    def check_labels(self, labels: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        """`labels` as the network may use them: None for an unconditional network, else (batch,) int64
        in [0, num_classes); raises ValueError for a conditional network called without them."""
        if not self.conditional:
            return None
        if labels is None:
            raise ValueError(f"{type(self).__name__} is class-conditional: pass labels of shape ({batch},).")
        if labels.shape != (batch,):
            raise ValueError(f"labels have shape {tuple(labels.shape)}, expected ({batch},).")
        return labels.long()


class Generator(_Player):
    """Base of every generator: `latent_dim`, `image_shape`, `num_classes` (0 when unconditional) and
    `forward(z, labels=None)` returning images in [-1, 1]."""

    #: What the generator is conditioned on besides noise: "label" (a class when num_classes > 0, or
    #: nothing); ImageGenerator says "image".
    conditioning = "label"

    def __init__(self, latent_dim: int, image_shape: Sequence[int], num_classes: int = 0) -> None:
        super().__init__(image_shape, num_classes)
        if isinstance(latent_dim, bool) or int(latent_dim) <= 0:
            raise ConfigError(f"model.latent_dim={latent_dim} must be a positive integer (100 in the study).")
        self.latent_dim = int(latent_dim)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError


class ImageGenerator(Generator):
    """Base of every image-conditional generator (augmenter): `forward(z, sources)` returns, for each
    source image in [-1, 1], another image of its class in [-1, 1]; `num_classes` is 0."""

    conditioning = "image"

    def __init__(self, latent_dim: int, image_shape: Sequence[int]) -> None:
        super().__init__(latent_dim, image_shape, num_classes=0)

    def check_sources(self, z: torch.Tensor, sources: torch.Tensor) -> None:
        """ValueError unless `sources` are (len(z), *image_shape) images."""
        if sources is None or sources.dim() != 4 or tuple(sources.shape[1:]) != self.image_shape:
            shape = None if sources is None else tuple(sources.shape)
            raise ValueError(
                f"{type(self).__name__} varies source images of shape (N, *{list(self.image_shape)}); "
                f"got {shape}."
            )
        if sources.size(0) != z.size(0):
            raise ValueError(f"{z.size(0)} noise vectors for {sources.size(0)} source images; pass one each.")

    def forward(self, z: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        raise NotImplementedError


class Discriminator(_Player):
    """Base of every discriminator: `image_shape`, `num_classes` and `forward(images, labels=None)`
    returning logits of shape (N,)."""

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError


class ClassifyingDiscriminator(Discriminator):
    """Base of a discriminator that names the class of an image: `classify(images)` returns (class logits
    (N, num_labels), features (N, F)); `forward` returns the log-sum-exp of the class logits as the logit
    of "real" (Salimans et al. 2016), and `labels` is ignored."""

    def __init__(self, image_shape: Sequence[int], num_labels: int) -> None:
        super().__init__(image_shape, num_classes=0)
        if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 2:
            raise ConfigError(
                f"model.discriminator.num_labels={num_labels} must be the number of classes to name (at "
                f"least 2), e.g. auto for the dataset's."
            )
        self.num_labels = int(num_labels)

    def classify(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return torch.logsumexp(self.classify(images)[0], dim=1)


class PairDiscriminator(Discriminator):
    """Base of the discriminator of an image-conditional generator: `forward(sources, candidates)`
    returns one logit per pair, high when the candidate is another real image of its source's class."""

    conditioning = "image"

    def __init__(self, image_shape: Sequence[int]) -> None:
        super().__init__(image_shape, num_classes=0)

    def forward(self, sources: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        raise NotImplementedError


def image_conditional(network: nn.Module) -> bool:
    """Whether `network` is conditioned on an image (ImageGenerator, PairDiscriminator)."""
    return getattr(network, "conditioning", None) == "image"


def activation(name: str, negative_slope: float = 0.2) -> nn.Module:
    """The activation module a model config names (one of ACTIVATIONS)."""
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(float(negative_slope))
    if name == "elu":
        return nn.ELU()
    if name == "gelu":
        return nn.GELU()
    if name == "silu":
        return nn.SiLU()
    raise ConfigError(f"activation={name!r} is not one of {', '.join(ACTIVATIONS)}.")
