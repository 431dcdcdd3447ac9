"""The two-player game of Goodfellow et al. (2014) as a LightningModule with manual optimization.

Per batch: `d_steps` discriminator updates on real vs. generated images, then one generator update.
The loss is the study's binary cross-entropy on logits (G: the non-saturating -log D(G(z))) or the
hinge loss. The generator runs once per discriminator step; its last output also feeds the generator
update. A class-conditional model (generator.num_classes > 0) is asked for the real batch's labels,
and both players see them. The game relies only on the contract of handwriting_gan.models.contract.

Options: `augment` (e.g. DiffAugment) transforms every image D sees, real and generated, in both
updates, differentiably; `ema_decay` keeps an exponential moving average of G's weights (torch's
AveragedModel) from step `ema_start` on, and that average is the generator that samples, draws the
grids, is measured and is saved as `generator.pt` (before `ema_start` the raw weights are copied, so
the average never holds the untrained start).

What callbacks may use (and nothing else of the game):
- `generator`, `discriminator`, `latent_dim`, `num_classes`, `sample(z, labels=None)`;
- `sampling_generator`: the generator to sample from and save (the EMA one when enabled);
- `step_losses`: the last batch's (d_loss, g_loss) as a tensor, for the divergence guard;
- `EPOCH_LOSSES`: the logged names of the epoch-mean losses of D and G, for the loss figure;
- `learning_rate` and `scale_learning_rate(factor)`, for the divergence guard's rollback.
"""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from handwriting_gan.errors import ConfigError
from handwriting_gan.models.contract import Discriminator, Generator

LOSSES = ("bce", "hinge")


class GAN(L.LightningModule):
    """Logs `train/d_loss`, `train/g_loss` and the mean D(x) (`train/d_real`) and D(G(z))
    (`train/d_fake`, sigmoid of the logits) with suffix `_step` every `trainer.log_every_n_steps`
    batches and `_epoch` (the mean over all batches of the epoch) with its last batch. The epoch sums
    stay on the device; calling `self.log` on every batch would cost about 15% of a CPU step."""

    STATS = ("train/d_loss", "train/g_loss", "train/d_real", "train/d_fake")
    EPOCH_LOSSES = {"discriminator": "train/d_loss_epoch", "generator": "train/g_loss_epoch"}

    def __init__(
        self,
        generator: Generator,
        discriminator: Discriminator,
        optimizer: Callable[..., torch.optim.Optimizer],
        optimizer_d: Callable[..., torch.optim.Optimizer] | None = None,
        latent_dim: int | None = None,
        d_steps: int = 1,
        loss: str = "bce",
        seed: int = 0,
        augment: nn.Module | None = None,
        ema_decay: float | None = None,
        ema_start: int = 0,
    ) -> None:
        """`optimizer` is a factory (a Hydra `_partial_`) called with a network's parameters; it builds
        G's optimizer, and D's too unless `optimizer_d` is given. `latent_dim`, when given, must equal
        the generator's (model configs state it once as `model.latent_dim`)."""
        super().__init__()
        if isinstance(d_steps, bool) or not isinstance(d_steps, int) or d_steps <= 0:
            raise ConfigError(
                f"d_steps={d_steps} is not allowed: expected a positive integer (1 in the study)."
            )
        if loss not in LOSSES:
            raise ConfigError(f"model.loss={loss} is not allowed: expected one of {', '.join(LOSSES)}.")
        if ema_decay is not None and not 0.0 < float(ema_decay) < 1.0:
            raise ConfigError(
                f"model.ema_decay={ema_decay} is not allowed: expected null (off) or a number in (0, 1)."
            )
        if isinstance(ema_start, bool) or int(ema_start) < 0:
            raise ConfigError(f"model.ema_start={ema_start} is not allowed: expected 0 or a positive step.")
        if latent_dim is not None and int(latent_dim) != generator.latent_dim:
            raise ConfigError(
                f"model.latent_dim={latent_dim} but the generator takes {generator.latent_dim}-d noise; "
                f"set model.generator.latent_dim to ${{model.latent_dim}}."
            )
        if tuple(generator.image_shape) != tuple(discriminator.image_shape):
            raise ConfigError(
                f"the generator makes {list(generator.image_shape)} images but the discriminator takes "
                f"{list(discriminator.image_shape)}; give both ${{dataset.image_shape}}."
            )
        if generator.num_classes != discriminator.num_classes:
            raise ConfigError(
                f"model.generator.num_classes={generator.num_classes} but "
                f"model.discriminator.num_classes={discriminator.num_classes}; they must be equal."
            )
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = discriminator
        self.optimizer_factory = optimizer
        self.optimizer_d_factory = optimizer_d or optimizer
        self.d_steps = d_steps
        self.loss = loss
        self.seed = int(seed)
        self.augment = augment or None  # an empty config group ({}) means none
        self.ema_start = int(ema_start)
        self.ema = (
            AveragedModel(generator, multi_avg_fn=get_ema_multi_avg_fn(float(ema_decay)), use_buffers=True)
            if ema_decay is not None
            else None
        )
        if self.ema is not None:
            self.ema.requires_grad_(False)
        # Batch norm in D normalises over the batch it is given: a batch of real and generated images
        # together is then a different function from generated images alone (the G step), and D and G
        # stop playing the same game (both losses went to ~0 for a DCGAN). Such a D sees them apart.
        self.joint_d_batch = not any(
            isinstance(m, nn.modules.batchnorm._BatchNorm) for m in discriminator.modules()
        )
        #: Multiplies the configured learning rates (lowered by the divergence guard's rollbacks).
        self.lr_scale = 1.0
        self.step_losses = torch.zeros(2)
        self.save_hyperparameters(
            ignore=["generator", "discriminator", "optimizer", "optimizer_d", "augment"]
        )

    # -- what callbacks use -------------------------------------------------------------------
    @property
    def latent_dim(self) -> int:
        return self.generator.latent_dim

    @property
    def num_classes(self) -> int:
        return self.generator.num_classes

    @property
    def sampling_generator(self) -> nn.Module:
        """The generator that samples, draws grids, is measured and saved: the EMA one when enabled."""
        return self.ema.module if self.ema is not None else self.generator

    @property
    def learning_rate(self) -> float:
        """The generator's current learning rate."""
        return float(self.optimizer_factory.keywords.get("lr", 1e-3)) * self.lr_scale

    def scale_learning_rate(self, factor: float) -> None:
        """Multiply both players' learning rates by `factor` from now on (kept across resumes)."""
        self.lr_scale *= float(factor)
        if self._trainer is not None:
            self._apply_optimizer_settings()

    @torch.no_grad()
    def sample(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Generated images in [-1, 1] for the given noise (and labels, for a conditional generator),
        drawn in eval mode (batch norm's running statistics, no dropout) without changing any state."""
        generator = self.sampling_generator
        was_training = generator.training
        generator.eval()
        try:
            labels = None if labels is None else labels.to(self.device)
            return generator(z.to(self.device), labels)
        finally:
            generator.train(was_training)

    # -- Lightning hooks ----------------------------------------------------------------------
    def configure_optimizers(self):
        opt_g = self.optimizer_factory(self.generator.parameters())
        opt_d = self.optimizer_d_factory(self.discriminator.parameters())
        return opt_g, opt_d

    def on_train_start(self) -> None:
        # The configured settings apply also to a resumed run (its optimizer states carry the old ones).
        self._apply_optimizer_settings()

    def _apply_optimizer_settings(self) -> None:
        factories = (self.optimizer_factory, self.optimizer_d_factory)
        for optimizer, factory in zip(self.trainer.optimizers, factories, strict=True):
            for group in optimizer.param_groups:
                for key, value in factory.keywords.items():
                    if key in group:
                        group[key] = tuple(value) if isinstance(value, list) else value
                if "lr" in factory.keywords:
                    group["lr"] = float(factory.keywords["lr"]) * self.lr_scale

    def on_train_epoch_start(self) -> None:
        # Noise and dropout draws of epoch e depend only on (seed, e, rank): a run resumed at an epoch
        # boundary continues exactly as the uninterrupted run would have.
        torch.manual_seed(self.seed * 1_000_003 + self.current_epoch * 7_919 + self.global_rank)
        self._epoch_sum = torch.zeros(len(self.STATS), device=self.device)
        self._epoch_batches = 0

    def training_step(self, batch, batch_idx: int) -> None:
        real, labels = batch
        labels = labels if self.num_classes else None
        opt_g, opt_d = self.optimizers()
        n = real.size(0)
        both_labels = None if labels is None else torch.cat([labels, labels])

        for _ in range(self.d_steps):
            fake = self.generator(torch.randn(n, self.latent_dim, device=real.device), labels)
            # Real and generated images go through D as one batch of 2n: one pass instead of two.
            if self.joint_d_batch:
                d_logits = self.discriminator(self._seen(torch.cat([real, fake.detach()])), both_labels)
            else:
                d_logits = torch.cat(
                    [
                        self.discriminator(self._seen(real), labels),
                        self.discriminator(self._seen(fake.detach()), labels),
                    ]
                )
            d_loss = self._d_loss(d_logits[:n], d_logits[n:])
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(d_loss)
            opt_d.step()

        # Freeze D while G learns: no gradient buffers for D's weights are computed or kept.
        self.toggle_optimizer(opt_g)
        g_loss = self._g_loss(self.discriminator(self._seen(fake), labels))
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g_loss)
        opt_g.step()
        self.untoggle_optimizer(opt_g)
        self._update_ema()

        with torch.no_grad():
            probabilities = torch.sigmoid(d_logits)
            stats = torch.stack([d_loss, g_loss, probabilities[:n].mean(), probabilities[n:].mean()])
        self.step_losses = stats[:2]
        self._epoch_sum += stats
        self._epoch_batches += 1
        if (batch_idx + 1) % self.trainer.log_every_n_steps == 0:
            self.log_dict(self._named(stats, "step"), on_step=True, on_epoch=False, prog_bar=True)
        if batch_idx + 1 == self.trainer.num_training_batches:
            # Logged from the last batch, so callbacks see the epoch means in on_train_epoch_end.
            means = self._epoch_sum / self._epoch_batches
            self.log_dict(self._named(means, "epoch"), on_step=False, on_epoch=True)

    def _seen(self, images: torch.Tensor) -> torch.Tensor:
        """What D sees of `images`: the augmented version when an augmentation is configured."""
        return images if self.augment is None else self.augment(images)

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self.ema is None:
            return
        if self.global_step // (self.d_steps + 1) < self.ema_start:
            # Until ema_start the average follows the raw weights, so it never keeps the untrained start.
            for averaged, raw in zip(
                self.ema.module.state_dict().values(), self.generator.state_dict().values(), strict=True
            ):
                averaged.copy_(raw)
            return
        self.ema.update_parameters(self.generator)

    # -- losses -------------------------------------------------------------------------------
    def _d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        if self.loss == "hinge":
            return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
        # BCE(D(x), 1) + BCE(D(G(z)), 0) with batch means, as in the study.
        return F.binary_cross_entropy_with_logits(
            real_logits, torch.ones_like(real_logits)
        ) + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))

    def _g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        if self.loss == "hinge":
            return -fake_logits.mean()
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))

    def _named(self, values: torch.Tensor, suffix: str) -> dict[str, torch.Tensor]:
        return {f"{name}_{suffix}": value for name, value in zip(self.STATS, values, strict=True)}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["lr_scale"] = self.lr_scale

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.lr_scale = float(checkpoint.get("lr_scale", 1.0))
