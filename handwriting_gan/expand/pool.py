"""The expand command's step for a pool of unlabelled images (`unlabeled=<folder>`): the semi-supervised GAN
(model=ssgan_mlp) trained on the labelled folder and the pool, kept in the work folder (an interrupted
training continues from its checkpoint), and every pool image labelled by its classifier, with the
softmax probability of the label as its confidence."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch

from handwriting_gan.errors import DataError
from handwriting_gan.expand.progress import duration
from handwriting_gan.files import atomic_path
from handwriting_gan.runs import RunFolder
from handwriting_gan.shell import say

#: The GAN's run folder inside the work folder, and the pool's labels beside it.
GAN_FOLDER, POOL_LABELS = "ssgan", "pool_labels.pt"
#: How often (in epochs, as a share of the run) a log without a terminal hears how the training goes.
REPORT_EVERY = 0.1


@dataclass(frozen=True)
class Pool:
    """The pool as the folder dataset read it: usable, unique images (uint8 (N, 1, H, W)) and each one's
    index in `files` (the pool folder's image files, sorted)."""

    images: torch.Tensor
    pool_index: torch.Tensor
    files: tuple[str, ...]


@dataclass(frozen=True)
class PoolLabels:
    """Every pool image's predicted label and its confidence, in Pool order."""

    labels: torch.Tensor
    confidence: torch.Tensor


def read_pool(datamodule) -> Pool:
    split = datamodule.label_split()
    return Pool(split.unlabelled, split.source_index, datamodule.pool_files())


def gan_overrides(
    plan, labelled_images: int, pool_images: int, seed: int | None = None, held_out: float = 0.0
) -> list[str]:
    """The training config of the pool's GAN: model=ssgan_mlp on the folder and its pool, as long as
    `pool_gan.batches` batches (whole epochs: an epoch is one pass over the larger of the two sets). With
    `held_out`, the folder dataset holds that part of each class out (drawn by `seed`, as the
    measurement's arms draw it), and the GAN never sees it."""
    batch = min(plan.pool_gan["batch_size"], max(labelled_images, pool_images))
    per_epoch = max(labelled_images, pool_images) // batch
    epochs = max(1, math.ceil(plan.pool_gan["batches"] / per_epoch))
    decay = round(plan.pool_gan["lr_decay_fraction"] * epochs)
    dataset = [f"dataset.{key}={value}" for key, value in plan.dataset.items() if value is not None]
    return [
        "model=ssgan_mlp",
        "dataset=folder",
        f"dataset.path={plan.path.resolve()}",
        f"dataset.unlabeled={plan.unlabeled.resolve()}",
        f"dataset.test_fraction={held_out}",
        f"dataset.batch_size={batch}",
        *dataset,
        f"paths.cache_dir={plan.cache_dir.resolve()}",
        f"seed={plan.seed if seed is None else seed}",
        f"trainer.max_epochs={epochs}",
        f"model.lr_decay_epochs={decay}",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "trainer.accelerator=" + ("gpu" if plan.device == "cuda" else "cpu"),
        # The run's own sample grids and loss figure are of no use inside the work folder.
        "~callbacks.samples",
        "~callbacks.losses",
    ]


class _EpochReport(L.Callback):
    """A console line every REPORT_EVERY of the epochs: how far, and the time left."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.first = 0

    def on_train_start(self, trainer, game) -> None:
        self.first = trainer.current_epoch  # a resumed run's time left counts only this run's epochs

    def on_train_epoch_end(self, trainer, game) -> None:
        epoch, total = trainer.current_epoch + 1, trainer.max_epochs
        every = max(1, round(REPORT_EVERY * total))
        elapsed = time.perf_counter() - self.started
        if epoch == total:
            say(f"  semi-supervised GAN: {total} epochs done in {duration(elapsed)}")
        elif epoch % every == 0:
            left = elapsed / max(1, epoch - self.first) * (total - epoch)
            say(f"  semi-supervised GAN: epoch {epoch} of {total}, about {duration(left)} left")


def train_gan(
    plan, folder: Path, labelled_images: int, pool_images: int, seed: int | None = None, held_out: float = 0.0
) -> Path:
    """The pool's GAN, trained in the run folder `folder` (continued from its checkpoint when one is
    there; `seed` and `held_out` as gan_overrides takes them); returns its classifier.pt."""
    from omegaconf import OmegaConf

    from handwriting_gan.assembly import build
    from handwriting_gan.config import compose_config
    from handwriting_gan.models.classifier_file import save_classifier

    run = RunFolder(folder)
    if run.classifier_file.is_file():
        return run.classifier_file
    cfg = compose_config(gan_overrides(plan, labelled_images, pool_images, seed, held_out), run_dir=run.path)
    resume = run.checkpoint.is_file()
    if not resume:
        run.hydra_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(run.config_file) as tmp:
            OmegaConf.save(cfg, tmp)
    epochs = int(cfg.trainer.max_epochs)
    say(
        f"Training the semi-supervised GAN on {labelled_images} labelled and {pool_images} pool images "
        f"({epochs} epochs, {plan.pool_gan['batches']} batches){' from its checkpoint' if resume else ''}; "
        f"TensorBoard: {run.tensorboard_dir}"
    )
    L.seed_everything(plan.seed, verbose=False)
    # Lightning's "GPU available" and "max_epochs reached" lines, and the datamodule's report of the
    # folders, which the command has already given, are not repeated.
    quieted = {
        logging.getLogger("lightning.pytorch"): logging.WARNING,
        logging.getLogger("handwriting_gan.data"): logging.ERROR,
    }
    levels = {logger: logger.level for logger in quieted}
    try:
        for logger, level in quieted.items():
            logger.setLevel(level)
        trainer, game, datamodule = build(cfg)
        trainer.callbacks.append(_EpochReport())
        trainer.fit(game, datamodule=datamodule, ckpt_path=run.checkpoint if resume else None)
    finally:
        for logger, level in levels.items():
            logger.setLevel(level)
    save_classifier(run.classifier_file, game.classifier, cfg.model.discriminator, datamodule.class_names)
    return run.classifier_file


def label_pool(classifier_file: Path, pool: Pool, work: Path, device: str) -> PoolLabels:
    """Every pool image's label and confidence (stored in the work folder once computed)."""
    from handwriting_gan.models.classifier_file import load_classifier

    stored = work / POOL_LABELS
    if stored.is_file():
        return _stored_labels(stored)
    classifier = load_classifier(classifier_file)
    classifier.network.to(device)
    started = time.perf_counter()
    labels, confidence = classifier.label(pool.images)
    seconds = time.perf_counter() - started
    say(f"Labelled the {len(labels)} pool images in {duration(seconds)}")
    with atomic_path(stored) as tmp:
        torch.save({"labels": labels, "confidence": confidence}, tmp)
    return PoolLabels(labels, confidence)


def self_training_labels(
    plan, images: torch.Tensor, labels: torch.Tensor, num_classes: int, pool: Pool, work: Path
) -> PoolLabels:
    """Every pool image's label and confidence by self-training instead of a GAN
    (`pool_labels=self_training`):
    the classifier of the measurement's (b), with classical augmentation tuned on the labelled images,
    labels the pool, the part above a threshold chosen on a validation part of them joins, two rounds; the
    last classifier labels the whole pool (stored in the work folder once computed)."""
    from handwriting_gan.augment.pool import choose_threshold, self_train, tuned_copies, with_copies
    from handwriting_gan.metrics.classifier import accuracy, fit_for_steps, predict

    stored = work / POOL_LABELS
    if stored.is_file():
        return _stored_labels(stored)

    def fit(fit_images, fit_labels, steps=plan.steps):
        return fit_for_steps(
            fit_images, fit_labels, num_classes, plan.classifier, steps, plan.seed, plan.device
        )[0]

    say(
        f"Labelling the {len(pool.images)} pool images by self-training (tuning classical augmentation first)"
    )
    _, _, copies = tuned_copies((images, labels), num_classes, plan.search, fit, accuracy, plan.seed)

    threshold, _ = choose_threshold((images, labels), pool.images, fit, copies, predict, accuracy, plan.seed)
    fit_b = with_copies(fit, copies, (images, labels))
    classifier, _, kept = self_train((images, labels), pool.images, fit_b, predict, threshold)
    say(f"Self-training kept {int(kept.sum())} of {len(kept)} pool images (threshold {threshold})")
    predicted, confidence = predict(classifier, pool.images)
    with atomic_path(stored) as tmp:
        torch.save({"labels": predicted, "confidence": confidence}, tmp)
    return PoolLabels(predicted, confidence)


def _stored_labels(stored: Path) -> PoolLabels:
    try:
        data = torch.load(stored, weights_only=True)
        return PoolLabels(data["labels"], data["confidence"])
    except Exception as error:
        raise DataError(f"{stored} cannot be read ({error}); delete it to label the pool again.") from None
