"""The two-player game of Goodfellow et al. (2014) as a LightningModule with manual optimization.

Per batch: `d_steps` discriminator updates on real vs. generated images (binary cross-entropy on
logits), then one generator update with the non-saturating loss -log D(G(z)). The generator runs
once per discriminator step; its last output also feeds the generator update.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from handwriting_gan.errors import ConfigError


class GAN(L.LightningModule):
    """Logs `train/d_loss`, `train/g_loss` and the mean D(x) (`train/d_real`) and D(G(z))
    (`train/d_fake`) with suffix `_step` every `trainer.log_every_n_steps` batches and `_epoch`
    (the mean over all batches of the epoch) with its last batch. The epoch sums stay on the device; calling
    `self.log` on every batch would cost about 15% of a CPU step (benchmarks/throughput.py)."""

    STATS = ("train/d_loss", "train/g_loss", "train/d_real", "train/d_fake")

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        lr: float = 2e-4,
        betas: Sequence[float] = (0.5, 0.999),
        d_steps: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if float(lr) <= 0:
            raise ConfigError(f"optim.lr={lr} must be a positive learning rate, e.g. 2e-4.")
        if len(betas) != 2 or not all(0.0 <= float(b) < 1.0 for b in betas):
            raise ConfigError(f"optim.betas={list(betas)} must be two numbers in [0, 1).")
        if int(d_steps) <= 0:
            raise ConfigError(f"d_steps={d_steps} must be a positive integer (1 in the paper).")
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = discriminator
        self.lr = float(lr)
        self.betas = (float(betas[0]), float(betas[1]))
        self.d_steps = int(d_steps)
        self.seed = int(seed)
        self.save_hyperparameters(ignore=["generator", "discriminator"])

    def on_train_epoch_start(self) -> None:
        # Noise and dropout draws of epoch e depend only on (seed, e, rank): a run resumed at an epoch
        # boundary continues exactly as the uninterrupted run would have.
        torch.manual_seed(self.seed * 1_000_003 + self.current_epoch * 7_919 + self.global_rank)
        self._epoch_sum = torch.zeros(len(self.STATS), device=self.device)
        self._epoch_batches = 0

    def on_train_start(self) -> None:
        # The configured rates apply also to a resumed run (its optimizer states carry the old ones).
        for optimizer in self.trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"], group["betas"] = self.lr, self.betas

    @property
    def latent_dim(self) -> int:
        return self.generator.latent_dim

    def configure_optimizers(self):
        # The fused kernel updates all of a network's tensors in one pass: about a fifth of a CPU
        # step saved for the MLPs (benchmarks/throughput.py), same update rule.
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=self.lr, betas=self.betas, fused=True)
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=self.lr, betas=self.betas, fused=True)
        return opt_g, opt_d

    def training_step(self, batch, batch_idx: int) -> None:
        real, _ = batch
        opt_g, opt_d = self.optimizers()
        n = real.size(0)
        # Real and generated images go through D as one batch of 2n: one matmul per layer instead of
        # two (about a sixth of a CPU step). Mean BCE over the 2n logits, times two, is exactly the
        # study's BCE(D(x), 1) + BCE(D(G(z)), 0) with batch means.
        targets = torch.cat([torch.ones(n, device=real.device), torch.zeros(n, device=real.device)])

        for _ in range(self.d_steps):
            fake = self.generator(torch.randn(n, self.latent_dim, device=real.device))
            d_logits = self.discriminator(torch.cat([real, fake.detach()]))
            d_loss = 2.0 * F.binary_cross_entropy_with_logits(d_logits, targets)
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(d_loss)
            opt_d.step()

        # Freeze D while G learns: no gradient buffers for D's weights are computed or kept.
        self.toggle_optimizer(opt_g)
        g_loss = F.binary_cross_entropy_with_logits(self.discriminator(fake), targets[:n])
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g_loss)
        opt_g.step()
        self.untoggle_optimizer(opt_g)

        with torch.no_grad():
            stats = torch.stack(
                [
                    d_loss,
                    g_loss,
                    torch.sigmoid(d_logits[:n]).mean(),
                    torch.sigmoid(d_logits[n:]).mean(),
                ]
            )
        self.step_stats = stats  # read by the divergence guard
        self._epoch_sum += stats
        self._epoch_batches += 1
        if (batch_idx + 1) % self.trainer.log_every_n_steps == 0:
            self.log_dict(self._named(stats, "step"), on_step=True, on_epoch=False, prog_bar=True)
        if batch_idx + 1 == self.trainer.num_training_batches:
            # Logged from the last batch, so callbacks see the epoch means in on_train_epoch_end.
            means = self._epoch_sum / self._epoch_batches
            self.log_dict(self._named(means, "epoch"), on_step=False, on_epoch=True)

    def _named(self, values: torch.Tensor, suffix: str) -> dict[str, torch.Tensor]:
        return {f"{name}_{suffix}": value for name, value in zip(self.STATS, values, strict=True)}

    @torch.no_grad()
    def sample(self, z: torch.Tensor) -> torch.Tensor:
        """Generated images in [-1, 1] for the given noise, without touching training state."""
        return self.generator(z.to(self.device))
