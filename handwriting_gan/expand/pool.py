"""The expand command with a pool of unlabelled images (`unlabeled=<folder>`), in the order it runs: read
the folder and the pool, measure when asked, label every pool image (by self-training, by the
semi-supervised GAN of expand/gan.py, or by self-training started from the GAN's labels; the softmax
probability of a label is its confidence), add the augmenter's variations when asked, and write `out`
whole."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from handwriting_gan.data.exports import check_target
from handwriting_gan.expand.gan import GAN_FOLDER, label_pool, train_gan
from handwriting_gan.expand.measure import measure_pool_seed
from handwriting_gan.expand.progress import Progress
from handwriting_gan.expand.reading import (
    Folder,
    Pool,
    PoolLabels,
    check_label_bytes,
    load_labels,
    read_pool,
    save_labels,
)
from handwriting_gan.expand.report import REPORT_JSON, pool_markdown, pool_summary
from handwriting_gan.expand.settings import Plan
from handwriting_gan.expand.store import MEASURE_FOLDER, WorkFolder
from handwriting_gan.expand.writing import (
    REVIEW_FILE,
    Expanded,
    augmenter_record,
    folder_manifest,
    review_sheet,
    write_folder,
)
from handwriting_gan.files import file_digest
from handwriting_gan.shell import duration, say

#: Self-training's labels of the pool in the work folder (from (b)'s classifier, or from the GAN's labels).
POOL_LABELS = "pool_labels.pt"
CLASSIFIER_FILE = "classifier.pt"
#: export.json's words for who labelled the pool (`pool_labels`).
LABELLED_BY = {
    "gan": "the semi-supervised GAN's classifier (model=ssgan_mlp)",
    "self_training": "self-training: the project's classifier with tuned classical augmentation, two rounds",
    "gan_self_training": "self-training started from the semi-supervised GAN's labels (model=ssgan_mlp): the "
    "project's classifier with tuned classical augmentation trained on them, two rounds",
}
#: review.png shows this many of each class's least confident pool images.
REVIEWED = 10
#: Mixed into the seed of the pool's synthetic variations (pool_variations).
POOL_GENERATION_STREAM = 0x9052


def run_with_pool(plan: Plan) -> dict[str, Any]:
    """Expand with a pool of unlabelled images: self-training or the semi-supervised GAN labels it
    (`pool_labels`), and `out` holds the labelled images, then the pool's with their predicted labels and
    confidences."""
    started = time.perf_counter()
    say(
        f"Expanding {plan.path} with the unlabelled images of {plan.unlabeled} into {plan.out} (finished "
        f"steps are kept in {plan.work} until it is complete)"
    )
    check_target(plan.out, plan.path, plan.overwrite)
    folder = Folder.read(plan)
    check_label_bytes(plan, folder)
    datamodule = plan.datamodule()
    pool = read_pool(datamodule)
    counts = folder.counts
    sizes = f"{min(counts)}" if min(counts) == max(counts) else f"{min(counts)} to {max(counts)}"
    say(
        f"Read {len(folder.labels)} labelled images of {len(counts)} classes, {sizes} per class, and "
        f"{len(pool.images)} usable pool images of {len(pool.files)} files"
    )
    if len(pool.images) < len(folder.labels):
        say(
            f"The pool ({len(pool.images)} images) is smaller than the labelled set ({len(folder.labels)}): "
            f"the GAN learns little from it; more unlabelled images are what this step needs."
        )
    # With a pool the measurement trains a GAN per seed: it runs when asked for, not by default.
    measuring = plan.measure is True and plan.measures(counts, folder.class_names)
    if plan.measure == "auto":
        say(
            "Not measuring: with a pool, measuring trains one more GAN per seed; pass measure=true to "
            "compare the GAN's labels with self-training on held-out images of your folder."
        )
    work = WorkFolder(
        plan.work,
        {
            **plan.identity(),
            "images": f"{len(folder.labels)} images, listing and preprocessing {folder.digest}",
            "pool_images": len(pool.images),
            "measure": measuring,
        },
    )
    if work.open():
        say(f"Continuing the expansion stored in {plan.work}")
    try:
        records = measure_pool_all(plan, len(pool.images), work) if measuring else None
        classifier_file, predicted = None, None
        if plan.pool_labels in ("gan", "gan_self_training"):
            classifier_file = train_gan(plan, work.path / GAN_FOLDER, len(folder.labels), len(pool.images))
            predicted = label_pool(classifier_file, pool, work.path, plan.device)
        if plan.pool_labels != "gan":
            predicted = self_training_labels(
                plan,
                folder.images,
                folder.labels,
                len(folder.class_names),
                pool,
                work.path,
                None if predicted is None else predicted.labels,
            )
        summary = pool_summary(records, plan.path, len(counts)) if records else None
        keep = predicted.confidence >= plan.min_confidence
        if plan.min_confidence > 0:
            say(
                f"Kept {int(keep.sum())} of {len(keep)} pool images labelled with confidence >= "
                f"{plan.min_confidence}"
            )
        kept_pool = (
            pool.images[keep],
            predicted.labels[keep],
            predicted.confidence[keep],
            pool.pool_index[keep],
        )
        made, augmenter = pool_variations(plan, folder, kept_pool) if plan.pool_variations else (None, None)
        expanded = Expanded.with_pool((folder.images, folder.labels), kept_pool, made)
        record = folder_manifest(
            plan,
            folder,
            expanded,
            augmenter=augmenter,
            settings={
                **{key: value for key, value in plan.identity().items() if key != "path"},
                "measure": measuring,
                "format": plan.format,
                "min_confidence": plan.min_confidence,
                "pool_variations": plan.pool_variations,
            },
            measurement=None if summary is None else {"sentence": summary["sentence"], "report": REPORT_JSON},
            pool={
                "folder": str(plan.unlabeled.resolve()),
                "files": len(pool.files),
                "usable": len(pool.images),
                "kept": int(keep.sum()),
                "labelled_by": LABELLED_BY[plan.pool_labels],
                "classifier_sha256": None if classifier_file is None else file_digest(classifier_file),
                "mean_confidence": round(float(predicted.confidence.mean()), 4),
            },
            pool_files=pool.files,
        )
        sheets = {REVIEW_FILE: review_sheet(expanded, folder.class_names, REVIEWED)}
        # The classifier that labelled the pool goes with it: it labels more images from Python
        # (handwriting_gan.models.classifier_file.load_classifier) and evaluate-style scripts score it.
        copies = {} if classifier_file is None else {CLASSIFIER_FILE: classifier_file}
        write_folder(plan, folder, expanded, record, summary, sheets, pool.files, copies, pool_markdown)
    except KeyboardInterrupt:
        say(f"Stopped. Run the same command again to continue from the steps kept in {plan.work}.")
        raise
    work.remove()
    seconds = time.perf_counter() - started
    num_synthetic = len(expanded.labels) - expanded.num_real
    say(
        f"Wrote {plan.out}: {len(folder.labels)} labelled + {expanded.num_pool} pseudo-labelled pool images "
        + (f"+ {num_synthetic} synthetic variations " if num_synthetic else "")
        + f"of {len(counts)} classes ({plan.format}), review.png"
        + (", classifier.pt" if classifier_file is not None else "")
        + f". Total time {duration(seconds)}."
    )
    return {
        "out": str(plan.out.resolve()),
        "format": plan.format,
        "num_real": expanded.num_real,
        "num_labelled": len(folder.labels),
        "num_pseudo_labelled": expanded.num_pool,
        "num_synthetic": num_synthetic,
        "class_counts": expanded.class_counts(folder.class_names),
        "skipped": len(folder.skipped),
        "report": summary,
        "seconds": seconds,
    }


def measure_pool_all(plan: Plan, pool_images: int, work: WorkFolder) -> list[dict]:
    """Every seed of the pool's measurement, each stored in `work` when finished (its GAN continued from
    its checkpoint)."""
    records = []
    for seed in range(plan.seeds):
        record = work.seed_record(seed)
        if "discriminator" not in record:
            say(
                f"Measuring, seed {seed + 1} of {plan.seeds}: (a), (b), self-training (s), the GAN's "
                f"labels (p)"
            )
            record = measure_pool_seed(plan, seed, work.path / MEASURE_FOLDER, record)
            work.save_seed(record)
        records.append(record)
    return records


def pool_variations(plan: Plan, folder: Folder, kept_pool) -> tuple[tuple[torch.Tensor, ...], dict[str, Any]]:
    """`plan.pool_variations` of the augmenter's variations of every labelled and kept pool image, each
    labelled as its source: (images, labels, the row of its source among the labelled and pool images),
    and export.json's record of the augmenter. Seeded, so the same command makes the same images; quick
    enough to make again when resumed."""
    from handwriting_gan.augmenter import Augmenter
    from handwriting_gan.expand.measure import stream_seed

    augmenter = Augmenter.load(plan.augmenter, plan.device)
    augmenter.batch_size = plan.batch_size
    augmenter.check_fits(plan.image_shape, folder.class_names)
    images = torch.cat([folder.images, kept_pool[0]])
    labels = torch.cat([folder.labels, kept_pool[1]])
    with Progress(f"Generating {plan.pool_variations} variation(s) of {len(labels)} images", 1) as progress:
        made = augmenter.vary(
            images, labels, plan.pool_variations, stream_seed(plan.seed, POOL_GENERATION_STREAM)
        )
        progress.advance()
    sources = "each synthetic image's `source` is the labelled or pool image it varies, whose label it has"
    return made, augmenter_record(plan, augmenter, sources)


def self_training_labels(
    plan,
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    pool: Pool,
    work: Path,
    start_labels: torch.Tensor | None = None,
) -> PoolLabels:
    """Every pool image's label and confidence by self-training (`pool_labels=self_training`): the
    classifier of the measurement's (b), with classical augmentation tuned on the labelled images, labels
    the pool, the part above a threshold chosen on a validation part of them joins, two rounds; the last
    classifier labels the whole pool (stored in the work folder once computed). With `start_labels` (the
    GAN's, `pool_labels=gan_self_training`), the first classifier is (b)'s trained on the labelled images
    and the whole pool with those labels: the arm (r) of the measurement."""
    from handwriting_gan.augment.pool import choose_threshold, self_train, tuned_copies, with_copies
    from handwriting_gan.metrics.classifier import accuracy, fit_for_steps, predict

    stored = work / POOL_LABELS
    if stored.is_file():
        return load_labels(stored)

    def fit(fit_images, fit_labels, steps=plan.steps):
        return fit_for_steps(
            fit_images, fit_labels, num_classes, plan.classifier, steps, plan.seed, plan.device
        )[0]

    start = "" if start_labels is None else ", started from the GAN's labels"
    say(
        f"Labelling the {len(pool.images)} pool images by self-training{start} (tuning classical "
        f"augmentation first)"
    )
    _, _, copies = tuned_copies((images, labels), num_classes, plan.search, fit, accuracy, plan.seed)

    threshold, _ = choose_threshold((images, labels), pool.images, fit, copies, predict, accuracy, plan.seed)
    fit_b = with_copies(fit, copies, (images, labels))
    first = None
    if start_labels is not None:
        first = fit_b(torch.cat([images, pool.images]), torch.cat([labels, start_labels]))
    classifier, _, kept = self_train((images, labels), pool.images, fit_b, predict, threshold, start=first)
    say(f"Self-training kept {int(kept.sum())} of {len(kept)} pool images (threshold {threshold})")
    return save_labels(stored, PoolLabels(*predict(classifier, pool.images)))
