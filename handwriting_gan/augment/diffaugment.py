"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training"): random,
differentiable transforms applied to every image the discriminator sees, real and generated.

D then cannot memorise a small training set pixel for pixel, and because the transforms are
differentiable, G's gradient passes through them, so G still learns to make un-augmented images.
The game must apply the same module to both real and generated inputs of D, in both D's and G's
update: augmenting only the reals would teach G to generate augmented-looking images.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.functional import pad

from handwriting_gan.errors import ConfigError

#: Policy names a config may list; they are applied in the order listed.
POLICIES = ("translation", "cutout", "color")


class DiffAugment(nn.Module):
    """Applies each policy in `policy` with fresh random parameters per image, on (N, C, H, W) in [-1, 1]:

    - `translation`: shift by up to `translation_ratio` of H and W (whole pixels); uncovered pixels
      become `fill`.
    - `cutout`: a rectangle of `cutout_ratio` x H by `cutout_ratio` x W, centred anywhere in the image,
      set to `fill`.
    - `color`: brightness (+U(-0.5, 0.5)), saturation (x U(0, 2) around the per-pixel channel mean) and
      contrast (x U(0.5, 1.5) around the image mean), unclamped as in the paper. Saturation does nothing
      to one-channel images: the channel mean is the pixel itself.

    `fill` is -1, the background of handwriting scaled to [-1, 1] (0 would be mid-grey, a value real
    images never have there). The module augments whenever it is called, in train and eval mode alike;
    the caller decides when. It never writes to its input.
    """

    def __init__(
        self,
        policy: Sequence[str],
        translation_ratio: float = 0.125,
        cutout_ratio: float = 0.5,
        fill: float = -1.0,
    ) -> None:
        super().__init__()
        if isinstance(policy, str) or not all(isinstance(name, str) for name in policy):
            raise ConfigError(
                f"augment.policy={policy!r} must be a list of policy names from {', '.join(POLICIES)}, "
                f"e.g. [translation, cutout]."
            )
        unknown = [name for name in policy if name not in POLICIES]
        if unknown:
            raise ConfigError(
                f"augment.policy={list(policy)} has unknown {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(POLICIES)}."
            )
        if not 0.0 <= float(translation_ratio) < 1.0:
            raise ConfigError(
                f"augment.translation_ratio={translation_ratio} must be in [0, 1) (a fraction of the side)."
            )
        if not 0.0 <= float(cutout_ratio) <= 1.0:
            raise ConfigError(
                f"augment.cutout_ratio={cutout_ratio} must be in [0, 1] (a fraction of the side)."
            )
        self.policy = list(policy)
        self.translation_ratio = float(translation_ratio)
        self.cutout_ratio = float(cutout_ratio)
        self.fill = float(fill)

    def extra_repr(self) -> str:
        return (
            f"policy={self.policy}, translation_ratio={self.translation_ratio}, "
            f"cutout_ratio={self.cutout_ratio}, fill={self.fill}"
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4:
            raise ValueError(f"DiffAugment expects images of shape (N, C, H, W), got {tuple(images.shape)}.")
        for name in self.policy:
            if name == "translation":
                images = self._translation(images)
            elif name == "cutout":
                images = self._cutout(images)
            else:
                images = self._color(images)
        return images

    def _uniform(self, images: torch.Tensor, low: float, high: float) -> torch.Tensor:
        """One draw per image, shaped to broadcast over (C, H, W)."""
        n = images.size(0)
        return torch.rand(n, 1, 1, 1, dtype=images.dtype, device=images.device) * (high - low) + low

    def _color(self, images: torch.Tensor) -> torch.Tensor:
        images = images + self._uniform(images, -0.5, 0.5)
        if images.size(1) > 1:
            mean = images.mean(dim=1, keepdim=True)
            images = (images - mean) * self._uniform(images, 0.0, 2.0) + mean
        mean = images.mean(dim=(1, 2, 3), keepdim=True)
        return (images - mean) * self._uniform(images, 0.5, 1.5) + mean

    def _translation(self, images: torch.Tensor) -> torch.Tensor:
        n, _, h, w = images.shape
        max_dy, max_dx = round(h * self.translation_ratio), round(w * self.translation_ratio)
        if max_dy == 0 and max_dx == 0:
            return images
        device = images.device
        dy = torch.randint(-max_dy, max_dy + 1, (n, 1, 1), device=device)
        dx = torch.randint(-max_dx, max_dx + 1, (n, 1, 1), device=device)
        # Output pixel (i, j) reads input pixel (i - dy, j - dx); the padding supplies `fill` where that
        # falls outside. Indexing (not an affine resample) keeps pixel values exact and the op differentiable.
        padded = pad(images, (max_dx, max_dx, max_dy, max_dy), value=self.fill)
        rows = torch.arange(h, device=device)[None, :, None] - dy + max_dy
        cols = torch.arange(w, device=device)[None, None, :] - dx + max_dx
        batch = torch.arange(n, device=device)[:, None, None]
        return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()

    def _cutout(self, images: torch.Tensor) -> torch.Tensor:
        n, _, h, w = images.shape
        size_h, size_w = round(h * self.cutout_ratio), round(w * self.cutout_ratio)
        if size_h == 0 or size_w == 0:
            return images
        device = images.device
        top = torch.randint(0, h, (n, 1, 1), device=device) - size_h // 2
        left = torch.randint(0, w, (n, 1, 1), device=device) - size_w // 2
        rows = torch.arange(h, device=device)[None, :, None]
        cols = torch.arange(w, device=device)[None, None, :]
        inside = (rows >= top) & (rows < top + size_h) & (cols >= left) & (cols < left + size_w)
        return images.masked_fill(inside[:, None], self.fill)
