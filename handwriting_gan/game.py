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

`mode_seeking` (a weight; 0 is off) adds the mode-seeking term of MSGAN (Mao et al. 2019) to G's
loss: pairs of generated images of the same class must differ as their noise differs. It keeps a
conditional G from drawing one image per class whatever z (measured on MNIST after 300 steps of a
conditional DCGAN: the per-pixel spread within a class was 0.04-0.10 without it under every
conditioning tried, 0.36-0.39 with weight 1, real digits 0.33).

`cuda_graph: true` (CUDA only) records one whole batch (the `d_steps` D updates and the G update:
forward, backward and the optimizers' steps) into a CUDA graph after a few eager warm-up batches and
replays it for every later batch of the same size, so a step costs one launch instead of hundreds.
It needs optimizers that take `capturable=True` (Adam, AdamW): they are built with it, and their
learning rates become device tensors that later changes (the divergence guard) write in place. The
noise is drawn inside the graph from CUDA's graph-safe generator, so a replay draws fresh noise as an
eager step does: results are equal in distribution to the eager path, not bit-identical. A rollback
or any reload of weights or optimizer state discards the graph and records a new one.

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
        cuda_graph: bool = False,
        mode_seeking: float = 0.0,
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
        if isinstance(mode_seeking, bool) or float(mode_seeking) < 0:
            raise ConfigError(
                f"model.mode_seeking={mode_seeking} is not allowed: expected 0 (off) or a positive weight."
            )
        self.mode_seeking = float(mode_seeking)
        if not isinstance(cuda_graph, bool):
            raise ConfigError(f"model.cuda_graph={cuda_graph} is not allowed: expected true or false.")
        self.automatic_optimization = False
        self.cuda_graph = cuda_graph
        self._graph: _CapturedStep | None = None
        self._eager_batches = 0
        #: Batches trained by replaying a recorded graph (model.cuda_graph=true), for logs and tests.
        self.graph_replays = 0
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
        extra = {}
        if self.cuda_graph:
            # Capturable optimizers keep their step counts on the device and read a tensor learning rate.
            extra = {"capturable": True, "lr": torch.tensor(float(self.optimizer_factory.keywords["lr"]))}
        opt_g = self.optimizer_factory(self.generator.parameters(), **extra)
        if self.cuda_graph:
            extra["lr"] = torch.tensor(float(self.optimizer_d_factory.keywords["lr"]))
        opt_d = self.optimizer_d_factory(self.discriminator.parameters(), **extra)
        return opt_g, opt_d

    def on_train_start(self) -> None:
        if hasattr(self, "_epoch_sum"):  # restored from a checkpoint, on the CPU
            self._epoch_sum = self._epoch_sum.to(self.device)
        if self.cuda_graph:
            self._check_capturable()
        # The configured settings apply also to a resumed run (its optimizer states carry the old ones).
        self._apply_optimizer_settings()

    def _check_capturable(self) -> None:
        problems = []
        if self.device.type != "cuda":
            problems.append(f"it records CUDA graphs, but this run trains on {self.device.type}")
        if self.trainer.world_size > 1:
            problems.append("DDP's gradient all-reduce cannot be recorded into a graph")
        if self.trainer.precision not in ("32-true", "32", "bf16-mixed", "bf16-true"):
            problems.append(f"trainer.precision={self.trainer.precision} (use 32-true or bf16-mixed)")
        if problems:
            raise ConfigError(
                "model.cuda_graph=true cannot be used here: " + "; ".join(problems) + ". Leave "
                "model.cuda_graph=false (the default) or train on one GPU (trainer=gpu)."
            )
        for optimizer in self.trainer.optimizers:
            for group in optimizer.param_groups:
                # The optimizers are on the device now; their tensor learning rates follow them.
                if isinstance(group["lr"], torch.Tensor):
                    group["lr"] = group["lr"].to(self.device)

    def _apply_optimizer_settings(self) -> None:
        factories = (self.optimizer_factory, self.optimizer_d_factory)
        for optimizer, factory in zip(self.trainer.optimizers, factories, strict=True):
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
        self._graph = None  # settings or states may have been replaced: record the step anew

    def on_train_epoch_start(self) -> None:
        self._epoch_sum = torch.zeros(len(self.STATS), device=self.device)
        self._epoch_batches = 0

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        # Noise and dropout draws of a batch depend only on (seed, epoch, batch, rank): a run resumed from
        # any checkpoint, one from inside an epoch too, continues exactly as the uninterrupted run would.
        seed = ((self.seed * 1_000_003 + self.current_epoch) * 7_919 + batch_idx) * 131 + self.global_rank
        # Only the generators this run draws from: torch.manual_seed also seeds every other backend
        # (CUDA, XPU, MTIA), about 2 ms a call, as long as a whole CPU step of a small model on a GPU.
        torch.default_generator.manual_seed(seed % 2**63)
        if self.device.type == "cuda":
            torch.cuda.manual_seed(seed % 2**63)  # the current device's generator

    def training_step(self, batch, batch_idx: int) -> None:
        real, labels = batch
        labels = labels if self.num_classes else None
        if self.cuda_graph:
            stats = self._captured_step(real, labels)
        else:
            opt_g, opt_d = self.optimizers()
            stats = self._step(real, labels, opt_g, opt_d, self.manual_backward)
        self._update_ema()
        self.step_losses = stats[:2]
        self._epoch_sum += stats
        self._epoch_batches += 1
        if (batch_idx + 1) % self.trainer.log_every_n_steps == 0:
            self.log_dict(self._named(stats, "step"), on_step=True, on_epoch=False, prog_bar=True)
        if batch_idx + 1 == self.trainer.num_training_batches:
            # Logged from the last batch, so callbacks see the epoch means in on_train_epoch_end.
            means = self._epoch_sum / self._epoch_batches
            self.log_dict(self._named(means, "epoch"), on_step=False, on_epoch=True)

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
            d_loss = self._d_loss(d_logits[:n], d_logits[n:])
            opt_d.zero_grad(set_to_none=True)
            backward(d_loss)
            opt_d.step()

        # Freeze D while G learns: no gradient buffers for D's weights are computed or kept.
        d_params = [p for p in self.discriminator.parameters() if p.requires_grad]
        for p in d_params:
            p.requires_grad_(False)
        g_loss = self._g_loss(self.discriminator(self._seen(fake), fake_labels))
        if self.mode_seeking:
            g_loss = g_loss + self.mode_seeking * mode_seeking_penalty(z, fake)
        opt_g.zero_grad(set_to_none=True)
        backward(g_loss)
        opt_g.step()
        for p in d_params:
            p.requires_grad_(True)

        with torch.no_grad():
            probabilities = torch.sigmoid(d_logits)
            return torch.stack([d_loss, g_loss, probabilities[:n].mean(), probabilities[n:].mean()])

    def _captured_step(self, real: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """`_step` through a CUDA graph: eager warm-up batches on a side stream, then one recording,
        then replays. A batch of another size (a last partial batch) runs eagerly."""
        lightning_optimizers = self.optimizers()
        opt_g, opt_d = (o.optimizer for o in lightning_optimizers)
        if self._graph is None and self._eager_batches >= _CapturedStep.WARMUP:
            self._graph = _CapturedStep(
                lambda r, y: self._step(r, y, opt_g, opt_d, torch.Tensor.backward), real, labels, self.device
            )
        if self._graph is not None and self._graph.fits(real):
            self._graph.replay(real, labels)  # the recording ran nothing: this batch is trained here
            stats = self._graph.stats.clone()
            self.graph_replays += 1
        else:
            # Warm-up (and a batch of another size) runs eagerly on a side stream: lazy initialisations
            # must not happen inside a recording.
            stream = torch.cuda.Stream(self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream):
                stats = self._step(real, labels, opt_g, opt_d, torch.Tensor.backward)
            torch.cuda.current_stream(self.device).wait_stream(stream)
            self._eager_batches += 1
        # The loop counts optimizer steps through Lightning's wrappers, which the graph bypasses.
        for optimizer in (lightning_optimizers[1],) * self.d_steps + (lightning_optimizers[0],):
            optimizer._on_before_step()
            optimizer._on_after_step()
        return stats

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
        if hasattr(self, "_epoch_sum"):
            # A checkpoint from inside an epoch carries the epoch's running sums, so the resumed run's
            # epoch means cover the whole epoch (Lightning calls no on_train_epoch_start when it resumes
            # inside an epoch).
            checkpoint["epoch_sums"] = {"sum": self._epoch_sum.cpu(), "batches": self._epoch_batches}

    def on_fit_end(self) -> None:
        # The trainer's teardown moves weights and optimizer states off the GPU: a graph recorded on
        # the old tensors must never be replayed.
        self._graph = None

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.lr_scale = float(checkpoint.get("lr_scale", 1.0))
        sums = checkpoint.get("epoch_sums", {"sum": torch.zeros(len(self.STATS)), "batches": 0})
        self._epoch_sum, self._epoch_batches = sums["sum"], int(sums["batches"])
        self._graph = None


def mode_seeking_penalty(z: torch.Tensor, images: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """The mode-seeking term of Mao et al. (2019, MSGAN): 1 / the mean over pairs (i, i + n/2) of
    |G(z_i) - G(z_j)| / |z_i - z_j| (mean absolute differences). Small when different noise gives
    different images, large when G ignores z (one image per class whatever the noise)."""
    half = z.size(0) // 2
    image_gap = (images[:half] - images[half : 2 * half]).abs().flatten(1).mean(dim=1)
    noise_gap = (z[:half] - z[half : 2 * half]).abs().mean(dim=1)
    return 1.0 / ((image_gap / noise_gap).mean() + eps)


class _CapturedStep:
    """One training batch recorded into a CUDA graph, with static input buffers it is replayed on."""

    #: Eager batches before the recording (cuBLAS handles, optimizer states and autograd's streams are
    #: set up lazily and must exist before a recording starts).
    WARMUP = 3

    def __init__(self, step, real: torch.Tensor, labels: torch.Tensor | None, device) -> None:
        self.real = real.clone()
        self.labels = None if labels is None else labels.clone()
        self.graph = torch.cuda.CUDAGraph()
        # Autocast's weight cache must be off while recording; the precision's dtype is kept.
        autocast = torch.autocast(
            "cuda",
            dtype=torch.get_autocast_dtype("cuda"),
            enabled=torch.is_autocast_enabled("cuda"),
            cache_enabled=False,
        )
        torch.cuda.synchronize(device)
        with autocast, torch.cuda.graph(self.graph):
            self.stats = step(self.real, self.labels)

    def fits(self, real: torch.Tensor) -> bool:
        return real.shape == self.real.shape

    def replay(self, real: torch.Tensor, labels: torch.Tensor | None) -> None:
        self.real.copy_(real)
        if self.labels is not None:
            self.labels.copy_(labels)
        self.graph.replay()
