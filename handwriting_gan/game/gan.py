"""The two-player game of Goodfellow et al. (2014) as a LightningModule with manual optimization.

Per batch: `d_steps` discriminator updates on real vs. generated images, then one generator update.
The loss is one of `handwriting_gan.game.losses.LOSSES`: the study's binary cross-entropy on logits (G:
the non-saturating -log D(G(z))) or the hinge loss. The generator runs once per discriminator step; its
last output also feeds the generator update. A class-conditional model (generator.num_classes > 0) is
asked for the real batch's labels, and both players see them. The game relies only on the contract of
handwriting_gan.models.contract.

Options: `augment` (e.g. DiffAugment) transforms every image D sees, real and generated, in both
updates, differentiably; `ema_decay` keeps an exponential moving average of G's weights from step
`ema_start` on (game.bookkeeping), and that average is the generator that samples, draws the grids, is
measured and is saved as `generator.pt`.

`mode_seeking` (a weight; 0 is off) adds the mode-seeking term of MSGAN (Mao et al. 2019) to G's
loss: pairs of generated images of the same class must differ as their noise differs. It keeps a
conditional G from drawing one image per class whatever z, which every conditioning tried without it did.

`cuda_graph: true` (CUDA only) hands each batch to game.cuda_graph, which records it into a CUDA graph
and replays it.

What callbacks may use (and nothing else of the game):
- `generator`, `discriminator`, `latent_dim`, `num_classes`, `sample(z, labels=None)`;
- `sampling_generator`: the generator to sample from and save (the EMA one when enabled);
- `step_losses`: the last batch's (d_loss, g_loss) as a tensor, for the divergence guard;
- `EPOCH_LOSSES`: the logged names of the epoch-mean losses of D and G, for the loss figure;
- `learning_rate` and `scale_learning_rate(factor)`, for the divergence guard's rollback.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import lightning as L
import torch
from torch import nn

from handwriting_gan.errors import ConfigError
from handwriting_gan.game.bookkeeping import EpochStats, GeneratorAverage, seed_batch
from handwriting_gan.game.cuda_graph import CudaGraphStep, capturable_options, check_capturable
from handwriting_gan.game.losses import loss_named, mode_seeking_penalty
from handwriting_gan.models.contract import Discriminator, Generator


class GAN(L.LightningModule):
    """Logs `train/d_loss`, `train/g_loss` and the mean D(x) (`train/d_real`) and D(G(z))
    (`train/d_fake`, sigmoid of the logits) with suffix `_step` every `trainer.log_every_n_steps`
    batches and `_epoch` (the mean over all batches of the epoch) with its last batch. The epoch sums
    stay on the device: `self.log` on every batch would cost a sizeable share of a small model's step."""

    STATS = ("train/d_loss", "train/g_loss", "train/d_real", "train/d_fake")
    #: Whether batches mix labelled and unlabelled images (game/semi.py); the datamodule must agree.
    trains_semi_supervised = False
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
        cuda_graph: bool = False,
        mode_seeking: float = 0.0,
    ) -> None:
        """`optimizer` is a factory (a Hydra `_partial_`) called with a network's parameters; it builds
        G's optimizer, and D's too unless `optimizer_d` is given. `latent_dim`, when given, must equal
        the generator's (model configs state it once as `model.latent_dim`)."""
        super().__init__()
        _check_settings(
            generator,
            discriminator,
            latent_dim,
            d_steps,
            loss,
            ema_decay,
            ema_start,
            mode_seeking,
            cuda_graph,
        )
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = discriminator
        self.optimizer_factory = optimizer
        self.optimizer_d_factory = optimizer_d or optimizer
        self.d_steps = d_steps
        self.loss = loss_named(loss)
        self.mode_seeking = float(mode_seeking)
        self.seed = int(seed)
        self.augment = augment or None  # an empty config group ({}) means none
        self.ema = GeneratorAverage(generator, ema_decay, ema_start) if ema_decay is not None else None
        self.cuda_graph = CudaGraphStep() if cuda_graph else None
        # Batch norm in D normalises over the batch it is given: a batch of real and generated images
        # together is then a different function from generated images alone (the G step), and D and G
        # stop playing the same game (a DCGAN's losses both fell towards 0). Such a D sees them apart.
        self.joint_d_batch = not any(
            isinstance(m, nn.modules.batchnorm._BatchNorm) for m in discriminator.modules()
        )
        #: Multiplies the configured learning rates (lowered by the divergence guard's rollbacks).
        self.lr_scale = 1.0
        self.step_losses = torch.zeros(2)
        self.epoch_stats = EpochStats(len(self.STATS))
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
        try:
            optimizers = self.trainer.optimizers
        except RuntimeError:  # not attached to a trainer: on_train_start applies the scale
            return
        self._apply_optimizer_settings(optimizers)

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
        extra = capturable_options if self.cuda_graph is not None else lambda factory: {}
        opt_g = self.optimizer_factory(self.generator.parameters(), **extra(self.optimizer_factory))
        opt_d = self.optimizer_d_factory(self.discriminator.parameters(), **extra(self.optimizer_d_factory))
        return opt_g, opt_d

    def on_train_start(self) -> None:
        self.epoch_stats.to(self.device)  # restored from a checkpoint on the CPU
        if self.cuda_graph is not None:
            check_capturable(self.trainer, self.device)
        # The configured settings apply also to a resumed run (its optimizer states carry the old ones).
        self._apply_optimizer_settings(self.trainer.optimizers)

    def on_train_epoch_start(self) -> None:
        self.epoch_stats.start(self.device)

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        seed_batch(self.seed, self.current_epoch, batch_idx, self.global_rank, self.device)

    def training_step(self, batch, batch_idx: int) -> None:
        real, labels = batch
        labels = labels if self.num_classes or self.trains_semi_supervised else None
        opt_g, opt_d = self.optimizers()
        if self.cuda_graph is None:
            stats = self._step(real, labels, opt_g, opt_d, self.manual_backward)
        else:
            # A graph records the plain torch optimizers' steps; Lightning's optimizers then count them.
            step = partial(
                self._step, opt_g=opt_g.optimizer, opt_d=opt_d.optimizer, backward=torch.Tensor.backward
            )
            stats = self.cuda_graph(step, real, labels, stepped=[opt_d] * self.d_steps + [opt_g])
        if self.ema is not None:
            self.ema.follow(self.generator, batches=self.global_step // (self.d_steps + 1))
        self.step_losses = stats[:2]
        self.epoch_stats.add(stats)
        if (batch_idx + 1) % self.trainer.log_every_n_steps == 0:
            self.log_dict(self._named(stats, "step"), on_step=True, on_epoch=False, prog_bar=True)
        if batch_idx + 1 == self.trainer.num_training_batches:
            # Logged from the last batch, so callbacks see the epoch means in on_train_epoch_end.
            self.log_dict(self._named(self.epoch_stats.means(), "epoch"), on_step=False, on_epoch=True)

    def _step(self, real, labels, opt_g, opt_d, backward: Callable[[torch.Tensor], None]) -> torch.Tensor:
        """One batch of the game: `d_steps` D updates, then one G update. Returns the step's statistics
        (d_loss, g_loss, mean D(x), mean D(G(z))) as one tensor."""
        n = real.size(0)
        fake_labels = labels
        if self.mode_seeking and labels is not None:
            # Mode seeking compares the pairs (i, i + n/2) of generated images: each pair shares a class.
            half = n // 2
            fake_labels = torch.cat([labels[:half], labels[:half], labels[2 * half :]])
        both_labels = None if labels is None else torch.cat([labels, fake_labels])
        for _ in range(self.d_steps):
            z = torch.randn(n, self.latent_dim, device=real.device)
            fake = self.generator(z, fake_labels)
            # Real and generated images go through D as one batch of 2n: one pass instead of two.
            if self.joint_d_batch:
                d_logits = self.discriminator(self._seen(torch.cat([real, fake.detach()])), both_labels)
            else:
                d_logits = torch.cat(
                    [
                        self.discriminator(self._seen(real), labels),
                        self.discriminator(self._seen(fake.detach()), fake_labels),
                    ]
                )
            d_loss = self.loss.d_loss(d_logits[:n], d_logits[n:])
            opt_d.zero_grad(set_to_none=True)
            backward(d_loss)
            opt_d.step()

        g_loss = self._update_generator(
            lambda: self.loss.g_loss(self.discriminator(self._seen(fake), fake_labels)),
            z,
            fake,
            opt_g,
            backward,
        )
        return self._statistics(d_loss, g_loss, d_logits, n)

    def _update_generator(self, adversarial_loss: Callable[[], torch.Tensor], z, fake, opt_g, backward):
        """G's update from its loss against D (`adversarial_loss()`, evaluated with D frozen: no gradient
        buffers for D's weights are computed or kept), with the mode-seeking term; returns G's loss."""
        d_params = [p for p in self.discriminator.parameters() if p.requires_grad]
        for p in d_params:
            p.requires_grad_(False)
        g_loss = adversarial_loss()
        if self.mode_seeking:
            g_loss = g_loss + self.mode_seeking * mode_seeking_penalty(z, fake)
        opt_g.zero_grad(set_to_none=True)
        backward(g_loss)
        opt_g.step()
        for p in d_params:
            p.requires_grad_(True)
        return g_loss

    @staticmethod
    def _statistics(d_loss, g_loss, d_logits: torch.Tensor, n: int) -> torch.Tensor:
        """(d_loss, g_loss, mean D(real), mean D(generated)) of a step whose D logits are real first."""
        with torch.no_grad():
            probabilities = torch.sigmoid(d_logits)
            return torch.stack([d_loss, g_loss, probabilities[:n].mean(), probabilities[n:].mean()])

    def _seen(self, images: torch.Tensor) -> torch.Tensor:
        """What D sees of `images`: the augmented version when an augmentation is configured."""
        return images if self.augment is None else self.augment(images)

    def _named(self, values: torch.Tensor, suffix: str) -> dict[str, torch.Tensor]:
        return {f"{name}_{suffix}": value for name, value in zip(self.STATS, values, strict=True)}

    def _apply_optimizer_settings(self, optimizers: list[torch.optim.Optimizer]) -> None:
        """Put the configured settings (learning rates times `lr_scale`) on (G's, D's) optimizers."""
        factories = (self.optimizer_factory, self.optimizer_d_factory)
        for optimizer, factory in zip(optimizers, factories, strict=True):
            for group in optimizer.param_groups:
                for key, value in factory.keywords.items():
                    if key in group and key != "lr":
                        group[key] = tuple(value) if isinstance(value, list) else value
                if "lr" in factory.keywords:
                    lr = float(factory.keywords["lr"]) * self.lr_scale
                    if isinstance(group["lr"], torch.Tensor):
                        group["lr"].fill_(lr)  # in place: a recorded graph reads this tensor
                    else:
                        group["lr"] = lr
        self._discard_graph()  # settings or states may have been replaced: record the step anew

    def _discard_graph(self) -> None:
        if self.cuda_graph is not None:
            self.cuda_graph.discard()

    # -- checkpoints --------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["lr_scale"] = self.lr_scale
        # A checkpoint from inside an epoch carries the epoch's running sums, so the resumed run's epoch
        # means cover the whole epoch (Lightning calls no on_train_epoch_start when it resumes inside an
        # epoch).
        checkpoint["epoch_sums"] = self.epoch_stats.state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.lr_scale = float(checkpoint.get("lr_scale", 1.0))
        self.epoch_stats.load_state_dict(
            checkpoint.get("epoch_sums", {"sum": torch.zeros(len(self.STATS)), "batches": 0})
        )
        self._discard_graph()

    def on_fit_end(self) -> None:
        # The trainer's teardown moves weights and optimizer states off the GPU: a graph recorded on
        # the old tensors must never be replayed.
        self._discard_graph()


def _check_settings(
    generator, discriminator, latent_dim, d_steps, loss, ema_decay, ema_start, mode_seeking, cuda_graph
) -> None:
    """ConfigError for a game setting out of range, or networks that do not fit each other."""
    if isinstance(d_steps, bool) or not isinstance(d_steps, int) or d_steps <= 0:
        raise ConfigError(f"d_steps={d_steps} is not allowed: expected a positive integer (1 in the study).")
    loss_named(loss)
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
    if isinstance(mode_seeking, bool) or float(mode_seeking) < 0:
        raise ConfigError(
            f"model.mode_seeking={mode_seeking} is not allowed: expected 0 (off) or a positive weight."
        )
    if not isinstance(cuda_graph, bool):
        raise ConfigError(f"model.cuda_graph={cuda_graph} is not allowed: expected true or false.")
