"""The expand command's semi-supervised GAN (model=ssgan_mlp, pool_labels=gan or gan_self_training): its
training config on the labelled folder and the pool, its run in the work folder (handwriting_gan.pool_gan:
continued from its checkpoint), and every pool image labelled by its classifier, with the softmax
probability of the label as its confidence."""

from __future__ import annotations

import time
from pathlib import Path

from handwriting_gan.expand.reading import Pool, PoolLabels, load_labels, save_labels
from handwriting_gan.expand.settings import Plan
from handwriting_gan.pool_gan import gan_length, run_overrides, train_pool_gan
from handwriting_gan.runs import RunFolder
from handwriting_gan.shell import duration, say

#: The GAN's run folder inside the work folder, and its labels of the pool beside it.
GAN_FOLDER, GAN_LABELS = "ssgan", "gan_labels.pt"


def gan_overrides(
    plan: Plan, epochs: int, batch: int, seed: int | None = None, held_out: float = 0.0
) -> list[str]:
    """The training config of the pool's GAN: model=ssgan_mlp on the folder and its pool, `epochs` epochs
    of batches of `batch` labelled + `batch` pool images (pool_gan.gan_length). With `held_out`, the
    folder dataset holds that part of each class out (drawn by `seed`, as the measurement's arms draw
    it), and the GAN never sees it."""
    dataset = [f"dataset.{key}={value}" for key, value in plan.dataset.items() if value is not None]
    return [
        "model=ssgan_mlp",
        "dataset=folder",
        f"dataset.path={plan.path.resolve()}",
        f"dataset.unlabeled={plan.unlabeled.resolve()}",
        f"dataset.test_fraction={held_out}",
        *dataset,
        f"paths.cache_dir={plan.cache_dir.resolve()}",
        f"seed={plan.seed if seed is None else seed}",
        *run_overrides(epochs, batch, plan.device, plan.pool_gan["lr_decay_fraction"]),
    ]


def train_gan(
    plan: Plan,
    folder: Path,
    labelled_images: int,
    pool_images: int,
    seed: int | None = None,
    held_out: float = 0.0,
) -> Path:
    """The pool's GAN, trained in the run folder `folder` (continued from its checkpoint when one is
    there; `seed` and `held_out` as gan_overrides takes them), as long as `pool_gan.batches` batches in
    whole epochs of one pass over the larger of the two sets; returns its classifier.pt."""
    run = RunFolder(folder)
    if run.classifier_file.is_file():
        return run.classifier_file
    epochs, _, batch = gan_length(
        labelled_images, pool_images, plan.pool_gan["batches"], plan.pool_gan["batch_size"]
    )
    say(
        f"Training the semi-supervised GAN on {labelled_images} labelled and {pool_images} pool images "
        f"({epochs} epochs, {plan.pool_gan['batches']} batches)"
        f"{' from its checkpoint' if run.checkpoint.is_file() else ''}; TensorBoard: {run.tensorboard_dir}"
    )
    return train_pool_gan(gan_overrides(plan, epochs, batch, seed, held_out), run.path, plan.seed)


def label_pool(classifier_file: Path, pool: Pool, work: Path, device: str) -> PoolLabels:
    """Every pool image's label and confidence by the GAN's classifier (stored in the work folder once
    computed)."""
    from handwriting_gan.models.classifier_file import load_classifier

    stored = work / GAN_LABELS
    if stored.is_file():
        return load_labels(stored)
    classifier = load_classifier(classifier_file)
    classifier.network.to(device)
    started = time.perf_counter()
    labels, confidence = classifier.label(pool.images)
    say(f"Labelled the {len(labels)} pool images in {duration(time.perf_counter() - started)}")
    return save_labels(stored, PoolLabels(labels, confidence))
