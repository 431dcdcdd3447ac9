"""The semi-supervised game of Salimans et al. (2016, "Improved Techniques for Training GANs"): the
discriminator names one of K classes, and "real" is the log-sum-exp of its class logits.

Each batch holds labelled images (label >= 0) and unlabelled ones (label -1), as the datamodule cuts them
when `dataset.labels_per_class` or `dataset.unlabeled` is set (data/batches.py: SemiSupervisedBatches). Per
batch, one D update on
    supervised cross-entropy of the labelled images
    + unsupervised_weight * 1/2 [BCE(real | unlabelled) + BCE(generated | generated)],
both BCEs on the log-sum-exp logit, then one G update by feature matching: G's images must match the mean
of D's last hidden features over the unlabelled batch (the paper's recipe, which makes the best
classifier; its samples are worse than a plain GAN's, as Dai et al. 2017 explain). Everything else is the
GAN's (noise seeding, checkpoints, the callbacks' contract), so the class only replaces the step and adds
the validation accuracy.

The last `lr_decay_epochs` of `trainer.max_epochs` lower both learning rates linearly towards 0, which
settles the classifier that a short run keeps.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy

from handwriting_gan.data.base import UNLABELLED
from handwriting_gan.errors import ConfigError
from handwriting_gan.game.bookkeeping import WarmAverage
from handwriting_gan.game.gan import GAN
from handwriting_gan.models.contract import ClassifyingDiscriminator


class SemiSupervisedGAN(GAN):
    """GAN's game with a discriminator that classifies; `classify(images)` gives its class logits."""

    STATS = GAN.STATS + ("train/d_supervised", "train/d_unsupervised", "train/labelled_accuracy")
    #: The datamodule hands this game labelled and unlabelled images in one batch.
    trains_semi_supervised = True

    def __init__(
        self,
        *args,
        unsupervised_weight: float = 1.0,
        lr_decay_epochs: int = 0,
        classifier_ema: float | None = 0.999,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.discriminator, ClassifyingDiscriminator):
            raise ConfigError(
                f"the semi-supervised game (handwriting_gan.game.SemiSupervisedGAN) needs a discriminator "
                f"that classifies (models/contract.py: ClassifyingDiscriminator); got "
                f"{type(self.discriminator).__name__}. Use model=ssgan_mlp."
            )
        if self.augment is not None or self.mode_seeking or self.cuda_graph is not None:
            raise ConfigError(
                "the semi-supervised game takes no augment, mode_seeking or cuda_graph: leave them off."
            )
        if isinstance(unsupervised_weight, bool) or float(unsupervised_weight) < 0:
            raise ConfigError(
                f"model.unsupervised_weight={unsupervised_weight} must be 0 (labels only) or positive (1.0)."
            )
        if isinstance(lr_decay_epochs, bool) or not isinstance(lr_decay_epochs, int) or lr_decay_epochs < 0:
            raise ConfigError(
                f"model.lr_decay_epochs={lr_decay_epochs} must be 0 (off) or a number of epochs."
            )
        if classifier_ema is not None and not 0.0 < float(classifier_ema) < 1.0:
            raise ConfigError(
                f"model.classifier_ema={classifier_ema} must be null (off) or a decay in (0, 1), e.g. 0.999."
            )
        # The paper scores a moving average of D's weights, not the last step's: a single step's D moves
        # by up to a point of test error from one batch to the next.
        self.classifier_average = (
            None if classifier_ema is None else WarmAverage(self.discriminator, float(classifier_ema))
        )
        self.unsupervised_weight = float(unsupervised_weight)
        self.lr_decay_epochs = lr_decay_epochs
        self.val_accuracy = MulticlassAccuracy(self.num_labels, average="micro")

    @property
    def num_labels(self) -> int:
        """The classes the discriminator names."""
        return self.discriminator.num_labels

    @property
    def classifier(self) -> ClassifyingDiscriminator:
        """The discriminator that classifies, validates and is saved as classifier.pt: the moving
        average of D's weights when `classifier_ema` is set."""
        return self.discriminator if self.classifier_average is None else self.classifier_average.module

    @torch.no_grad()
    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """The classifier's logits (N, K) for images in [-1, 1], in eval mode (no noise), changing no
        state."""
        classifier = self.classifier
        was_training = classifier.training
        classifier.eval()
        try:
            return classifier.classify(images.to(self.device))[0]
        finally:
            classifier.train(was_training)

    def training_step(self, batch, batch_idx: int) -> None:
        super().training_step(batch, batch_idx)
        if self.classifier_average is not None:
            self.classifier_average.update_parameters(self.discriminator)

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        if self.lr_decay_epochs:
            left = self.trainer.max_epochs - self.current_epoch
            factor = min(1.0, left / self.lr_decay_epochs)
            for optimizer, factory in zip(
                self.trainer.optimizers, (self.optimizer_factory, self.optimizer_d_factory), strict=True
            ):
                for group in optimizer.param_groups:
                    group["lr"] = float(factory.keywords.get("lr", 1e-3)) * self.lr_scale * factor

    def _step(self, real, labels, opt_g, opt_d, backward: Callable[[torch.Tensor], None]) -> torch.Tensor:
        """One batch: a D update (supervised + unsupervised), then a G update by feature matching. Returns
        the GAN's four statistics, then the supervised and unsupervised losses and the labelled batch's
        accuracy."""
        if labels is None:
            raise ValueError("the semi-supervised game needs the batch's labels (-1 for unlabelled images).")
        labelled = labels != UNLABELLED
        x_lab, y_lab, x_unl = real[labelled], labels[labelled], real[~labelled]
        if not len(x_lab) or not len(x_unl):
            raise ValueError(
                f"a semi-supervised batch needs labelled and unlabelled images; got {len(x_lab)} and "
                f"{len(x_unl)} (set dataset.labels_per_class or dataset.unlabeled)."
            )
        n = x_unl.size(0)
        z = torch.randn(n, self.latent_dim, device=real.device)
        fake = self.generator(z)
        if self.global_step == 0:
            with torch.no_grad():  # a data-dependent start (weight normalisation) sees real images only
                self.discriminator.classify(x_unl)
        # One pass over the three parts (D has no batch statistics): one weight normalisation and larger
        # matrix products, a sizeable share of the step on a CPU.
        logits, _ = self.discriminator.classify(torch.cat([x_unl, x_lab, fake.detach()]))
        logits_unl, logits_lab, logits_gen = logits.split([n, len(x_lab), n])
        supervised = F.cross_entropy(logits_lab, y_lab)
        real_logit, fake_logit = torch.logsumexp(logits_unl, 1), torch.logsumexp(logits_gen, 1)
        unsupervised = 0.5 * (F.softplus(-real_logit).mean() + F.softplus(fake_logit).mean())
        d_loss = supervised + self.unsupervised_weight * unsupervised
        opt_d.zero_grad(set_to_none=True)
        backward(d_loss)
        opt_d.step()

        # The target is the updated D's view of real images, as G's side is (the pre-update features would
        # be a step stale, and at the paper's learning rate a step moves D's features far).
        with torch.no_grad():
            target = self.discriminator.classify(x_unl)[1].mean(0)
        g_loss = self._update_generator(
            lambda: (self.discriminator.classify(fake)[1].mean(0) - target).pow(2).mean(),
            z,
            fake,
            opt_g,
            backward,
        )
        with torch.no_grad():
            accuracy = (logits_lab.argmax(1) == y_lab).float().mean()
        base = self._statistics(d_loss, g_loss, torch.cat([real_logit, fake_logit]).detach(), n)
        return torch.cat([base, torch.stack([supervised.detach(), unsupervised.detach(), accuracy])])

    # -- the discriminator's accuracy on the validation labels, per epoch -------------------------
    def validation_step(self, batch, batch_idx: int) -> None:
        images, labels = batch
        self.val_accuracy.update(self.classifier.classify(images)[0], labels)

    def on_validation_epoch_end(self) -> None:
        self.log("val/accuracy", self.val_accuracy.compute(), prog_bar=True)
        self.val_accuracy.reset()
