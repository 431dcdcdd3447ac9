"""The game of an image-conditional augmenter (DAGAN; models/dagan.py), on batches of pairs of images of
one class (the datamodule's PairedBatches, which the training command asks for when the model is
image-conditional).

Per batch of pairs (x, y): D learns to score (x, y) as real and (x, G(x, z)) as generated; G learns to
make (x, G(x, z)) score as real. Everything else is the GAN's (the loss of `model.loss`, `d_steps`, the
EMA of G, checkpoints, the logged statistics, the callbacks' contract), so the class only replaces the
step. On top of it:
- `augment` transforms each pair as one two-channel image: both images move together, so D still
  compares them pixel by pixel (a copy of x stays a copy), but cannot memorise the source images;
- R1 (Mescheder et al. 2018): every `r1_every` D steps, `r1_gamma / 2 * |grad D(real pair)|^2` (scaled by
  r1_every, lazy regularisation as in StyleGAN2), which keeps D smooth around the real pairs;
- `mode_seeking` compares G(x, z1) with G(x, z2) for the same x: the noise must change the image, or G
  would learn the one safe answer, a copy of x with small changes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from handwriting_gan.errors import ConfigError
from handwriting_gan.game.gan import GAN
from handwriting_gan.models.contract import image_conditional


class PairGAN(GAN):
    """GAN's game on pairs; `sample_variations(sources, z)` is what grids and the augmenter draw."""

    def __init__(self, *args, r1_gamma: float = 1.0, r1_every: int = 4, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not (image_conditional(self.generator) and image_conditional(self.discriminator)):
            raise ConfigError(
                f"the pair game (model._target_=handwriting_gan.game.PairGAN) needs an image-conditional "
                f"generator and pair discriminator (models/contract.py: ImageGenerator, PairDiscriminator); "
                f"got {type(self.generator).__name__} and {type(self.discriminator).__name__}."
            )
        if isinstance(r1_gamma, bool) or float(r1_gamma) < 0:
            raise ConfigError(f"model.r1_gamma={r1_gamma} must be 0 (off) or a positive weight (e.g. 1.0).")
        if isinstance(r1_every, bool) or not isinstance(r1_every, int) or r1_every < 1:
            raise ConfigError(f"model.r1_every={r1_every} must be a positive number of D steps (e.g. 4).")
        self.r1_gamma, self.r1_every = float(r1_gamma), int(r1_every)
        self.d_updates = 0

    #: The datamodule hands this game pairs (data/batches.py: PairedBatches).
    trains_on_pairs = True

    @torch.no_grad()
    def sample_variations(self, sources: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """G(sources, z) in eval mode from the sampling generator (the EMA one when enabled), without
        changing any state; `sources` in [-1, 1], one per noise vector."""
        generator = self.sampling_generator
        was_training = generator.training
        generator.eval()
        try:
            return generator(z.to(self.device), sources.to(self.device))
        finally:
            generator.train(was_training)

    def sample(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        raise TypeError(
            "an image-conditional augmenter draws variations of source images: "
            "use sample_variations(sources, z)."
        )

    def _step(self, real, labels, opt_g, opt_d, backward: Callable[[torch.Tensor], None]) -> torch.Tensor:
        """One batch of pairs `real` (2, n, C, H, W): `d_steps` D updates, then one G update. Returns
        (d_loss, g_loss, mean D(real pair), mean D(generated pair))."""
        if real.dim() != 5 or real.size(0) != 2:
            raise ValueError(
                f"the pair game trains on pairs (2, N, C, H, W) of images of one class; got a batch of "
                f"{tuple(real.shape)} (the datamodule's `pairs` must be on)."
            )
        sources, partners = real[0], real[1]
        n = sources.size(0)
        if self.mode_seeking:
            # Mode seeking compares (i, i + n/2): both vary the same source with different noise.
            half = n // 2
            fake_sources = torch.cat([sources[:half], sources[:half], sources[2 * half :]])
        else:
            fake_sources = sources
        for _ in range(self.d_steps):
            z = torch.randn(n, self.latent_dim, device=sources.device)
            fake = self.generator(z, fake_sources)
            real_pairs = torch.cat([sources, partners], dim=1)
            fake_pairs = torch.cat([fake_sources, fake.detach()], dim=1)
            regularise = self.r1_gamma > 0 and self.d_updates % self.r1_every == 0
            if regularise:
                real_pairs.requires_grad_(True)
            seen = self._seen(torch.cat([real_pairs, fake_pairs]))
            d_logits = self.discriminator.pairs(seen)
            d_loss = self.loss.d_loss(d_logits[:n], d_logits[n:])
            total = d_loss
            if regularise:
                (grad,) = torch.autograd.grad(d_logits[:n].sum(), real_pairs, create_graph=True)
                r1 = grad.pow(2).flatten(1).sum(1).mean()
                total = d_loss + 0.5 * self.r1_gamma * self.r1_every * r1
            opt_d.zero_grad(set_to_none=True)
            backward(total)
            opt_d.step()
            self.d_updates += 1

        g_loss = self._update_generator(
            lambda: self.loss.g_loss(
                self.discriminator.pairs(self._seen(torch.cat([fake_sources, fake], dim=1)))
            ),
            z,
            fake,
            opt_g,
            backward,
        )
        return self._statistics(d_loss, g_loss, d_logits, n)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["d_updates"] = self.d_updates

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        self.d_updates = int(checkpoint.get("d_updates", 0))
