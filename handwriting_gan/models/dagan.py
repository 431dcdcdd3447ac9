"""The image-conditional augmenter of DAGAN (Antoniou, Storkey, Edwards 2018, "Data Augmentation
Generative Adversarial Networks"): G(x, z) draws another image of x's class from one real image x and
noise z, and D tells the pairs (x, another real image of x's class) from (x, G(x, z)).

G is an encoder-decoder with skip connections (a small U-Net): the encoder reads the source down to a
(H/4 x W/4) map, z joins the decoder at each resolution, and each decoder stage sees the encoder's
features of its resolution, so the output keeps the source's layout while z moves its strokes. D reads
the pair as two channels of one image, so it compares the two images pixel by pixel: a copy of the
source is as easy for it to spot as an image of another class.

Sized for a CPU: nothing runs at full resolution but the last 3x3 convolution, so the shipped augmenter
draws thousands of images per second on two cores (benchmarks/augmenter.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from handwriting_gan.errors import ConfigError
from handwriting_gan.models.contract import ImageGenerator, PairDiscriminator


def _groups(channels: int) -> int:
    """Group norm's number of groups: 8 channels a group where the channels divide by 8."""
    return max(1, channels // 8) if channels % 8 == 0 else 1


def _check_channels(key: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 8 or value % 8:
        raise ConfigError(f"model.{key}={value} must be a multiple of 8, at least 8 (e.g. 32).")
    return value


def _check_size(image_shape: Sequence[int]) -> None:
    _, height, width = image_shape
    if height % 4 or width % 4:
        raise ConfigError(
            f"image_shape={list(image_shape)}: the augmenter halves H and W twice, so both must be "
            f"divisible by 4 (28x28 is)."
        )


#: How far the fine (H/2) displacement field may move a stroke, as a share of warp_range.
FINE_SHARE = 0.5
#: What the decoder outputs (model.generator.output).
OUTPUTS = ("warp", "pixels")


class UNetAugmenter(ImageGenerator):
    """G(x, z): encoder 1 -> c (H/2) -> 2c (H/4); bottleneck with z; decoder 2c -> c (H/2, with the
    encoder's H/2 features and z); then, by `output`:

    - `warp`: the decoder predicts a displacement field (at H/4 and H/2, summed, at most `warp_range` of
      the side) and a stroke-thickness field, and the output is the source moved by that field, its
      strokes thickened or thinned where the field says (with `integrate`, the field is a velocity,
      integrated into a fold-free displacement). Every output is the source's own strokes,
      moved: a variation of the character, never another one. The heads start at zero, so G starts as
      the identity and D's first lesson is that a copy of the source is not another drawer's image;
    - `pixels`: DAGAN's own head, up to full size (with the source itself) and a tanh image.

    Group norm rather than batch norm: the augmenter is applied to whatever few images a user has, one
    class at a time, and must not depend on the batch it is given."""

    def __init__(
        self,
        latent_dim: int,
        image_shape: Sequence[int],
        channels: int = 32,
        noise_channels: int = 8,
        output: str = "warp",
        warp_range: float = 0.15,
        integrate: int = 0,
    ) -> None:
        super().__init__(latent_dim, image_shape)
        _check_size(self.image_shape)
        c = _check_channels("generator.channels", channels)
        k = _check_channels("generator.noise_channels", noise_channels)
        if output not in OUTPUTS:
            raise ConfigError(f"model.generator.output={output!r} must be one of {', '.join(OUTPUTS)}.")
        if isinstance(warp_range, bool) or not 0 < float(warp_range) < 1:
            raise ConfigError(
                f"model.generator.warp_range={warp_range} must be in (0, 1): the largest displacement, "
                f"as a fraction of the image side (0.15: 4 pixels of 28)."
            )
        if isinstance(integrate, bool) or not isinstance(integrate, int) or not 0 <= integrate <= 10:
            raise ConfigError(
                f"model.generator.integrate={integrate!r} must be a whole number in [0, 10]: the scaling and "
                f"squaring steps of the displacement (0: the field as predicted; 6 keeps it fold-free)."
            )
        colour, height, width = self.image_shape
        self.channels, self.noise_channels, self.output = c, k, output
        self.warp_range, self.integrate = float(warp_range), integrate
        self.quarter = (height // 4, width // 4)
        self.half = (height // 2, width // 2)
        self.down1 = nn.Sequential(nn.Conv2d(colour, c, 4, 2, 1), nn.LeakyReLU(0.2))
        self.down2 = nn.Sequential(
            nn.Conv2d(c, 2 * c, 4, 2, 1), nn.GroupNorm(_groups(2 * c), 2 * c), nn.LeakyReLU(0.2)
        )
        self.noise_quarter = nn.Linear(self.latent_dim, k * self.quarter[0] * self.quarter[1])
        self.noise_half = nn.Linear(self.latent_dim, k * self.half[0] * self.half[1])
        self.bottleneck = nn.Sequential(
            nn.Conv2d(2 * c + k, 2 * c, 3, 1, 1), nn.GroupNorm(_groups(2 * c), 2 * c), nn.ReLU()
        )
        # Nearest upsampling and a convolution: transposed convolutions drew a checkerboard of dots.
        self.up1 = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(2 * c, c, 3, 1, 1),
            nn.GroupNorm(_groups(c), c),
            nn.ReLU(),
        )
        self.merge1 = nn.Sequential(nn.Conv2d(2 * c + k, c, 3, 1, 1), nn.GroupNorm(_groups(c), c), nn.ReLU())
        if output == "warp":
            # (dx, dy, thickness) at H/4 from the bottleneck and at H/2 from the decoder.
            self.coarse = nn.Conv2d(2 * c, 3, 3, 1, 1)
            self.fine = nn.Conv2d(c, 3, 3, 1, 1)
            for head in (self.coarse, self.fine):
                nn.init.zeros_(head.weight)
                nn.init.zeros_(head.bias)
            identity = torch.nn.functional.affine_grid(
                torch.eye(2, 3)[None], [1, colour, height, width], align_corners=False
            )
            self.register_buffer("identity", identity, persistent=False)
        else:
            self.up0 = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c // 2, 3, 1, 1), nn.ReLU()
            )
            self.out = nn.Conv2d(c // 2 + colour, colour, 3, 1, 1)

    def forward(self, z: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        self.check_sources(z, sources)
        n = z.size(0)
        half = self.down1(sources)
        quarter = self.down2(half)
        noise_q = self.noise_quarter(z).view(n, self.noise_channels, *self.quarter)
        noise_h = self.noise_half(z).view(n, self.noise_channels, *self.half)
        bottom = self.bottleneck(torch.cat([quarter, noise_q], dim=1))
        x = self.merge1(torch.cat([self.up1(bottom), half, noise_h], dim=1))
        if self.output == "warp":
            return self.warp(sources, self.coarse(bottom), self.fine(x))
        x = self.up0(x)
        return torch.tanh(self.out(torch.cat([x, sources], dim=1)))

    def warp(self, sources: torch.Tensor, coarse: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        """The sources moved by the displacement of (coarse + fine) and thickened or thinned by their
        thickness channel, in [-1, 1]."""
        size = sources.shape[-2:]
        coarse = F.interpolate(coarse, size=size, mode="bilinear", align_corners=False)
        fine = F.interpolate(fine, size=size, mode="bilinear", align_corners=False)
        fields = coarse + fine
        # grid_sample's coordinates span [-1, 1] across the image: a range r of the side is 2r there. The
        # fine field moves strokes at most FINE_SHARE as far as the coarse one moves the whole character:
        # with both at full range, G bent strokes into squiggles no drawer makes.
        shift = (torch.tanh(coarse[:, :2]) + FINE_SHARE * torch.tanh(fine[:, :2])) * (2 * self.warp_range)
        if self.integrate:
            shift = self.exponentiate(shift)
        grid = self.identity + shift.permute(0, 2, 3, 1)
        # Paper is -1: sample ink in [0, 1] with zeros outside, so what moves in from outside is paper.
        ink = F.grid_sample(
            (sources + 1) / 2, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        thickness = torch.tanh(fields[:, 2:3])
        thicker = F.max_pool2d(ink, 3, 1, 1)
        thinner = -F.max_pool2d(-ink, 3, 1, 1)
        ink = ink + F.relu(thickness) * (thicker - ink) + F.relu(-thickness) * (thinner - ink)
        return ink * 2 - 1

    def exponentiate(self, velocity: torch.Tensor) -> torch.Tensor:
        """The displacement (N, 2, H, W) of flowing along the stationary `velocity` field for unit time,
        by scaling and squaring (Arsigny et al. 2006): `integrate` compositions of the field scaled by
        1 / 2^integrate with itself. A smooth field so integrated never folds, so a warp cannot lay a
        stroke over itself or pull a second copy of one out of the paper."""
        displacement = velocity / 2**self.integrate
        for _ in range(self.integrate):
            grid = self.identity + displacement.permute(0, 2, 3, 1)
            displacement = displacement + F.grid_sample(
                displacement, grid, mode="bilinear", padding_mode="border", align_corners=False
            )
        return displacement


class PairCritic(PairDiscriminator):
    """D(x, y): the pair as two channels, strided convolutions 2 -> c (H/2) -> 2c (H/4) -> 4c (H/8),
    then one logit. No normalisation: R1 and the hinge loss keep it in check, and batch statistics
    would mix the real and generated pairs of a batch."""

    def __init__(self, image_shape: Sequence[int], channels: int = 32, dropout: float = 0.0) -> None:
        super().__init__(image_shape)
        _check_size(self.image_shape)
        c = _check_channels("discriminator.channels", channels)
        if not 0.0 <= float(dropout) < 1.0:
            raise ConfigError(f"model.discriminator.dropout={dropout} must be in [0, 1).")
        colour, height, width = self.image_shape
        self.features = nn.Sequential(
            nn.Conv2d(2 * colour, c, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(c, 2 * c, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * c, 4 * c, 3, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Dropout(float(dropout)),
        )
        eighth = (-(-height // 8)) * (-(-width // 8))
        self.logit = nn.Linear(4 * c * eighth, 1)

    def forward(self, sources: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.pairs(torch.cat([sources, candidates], dim=1))

    def pairs(self, stacked: torch.Tensor) -> torch.Tensor:
        """Logits of pairs already stacked as (N, 2C, H, W): the game augments the stack as one image."""
        return self.logit(self.features(stacked)).squeeze(1)
