"""The expand command and its Python function, `expand_folder`: check the plan, read the folder, measure
(each seed's steps kept in the work folder), make the synthetic images (kept too), and write `out` whole,
in the order a person reads the console."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from handwriting_gan.augmenter import Augmenter, augmenter_file
from handwriting_gan.data.exports import EXPORT_FILE, check_target, partial_folder
from handwriting_gan.errors import ConfigError, DataError
from handwriting_gan.expand.measure import measure_pool_seed, measure_seed, steps_of, stream_seed
from handwriting_gan.expand.progress import Progress, duration
from handwriting_gan.expand.report import (
    REPORT_JSON,
    REPORT_MD,
    markdown,
    pool_markdown,
    pool_summary,
    summarize,
)
from handwriting_gan.expand.settings import Plan, check_plan, expand_config
from handwriting_gan.expand.store import MEASURE_FOLDER, WorkFolder
from handwriting_gan.expand.writing import (
    REVIEW_FILE,
    SAMPLES_FILE,
    Expanded,
    manifest,
    review_sheet,
    samples_sheet,
    write_dataset,
)
from handwriting_gan.shell import command, say, set_threads

#: Mixed into the seed of each class's synthetic images for the expanded dataset.
GENERATION_STREAM = 0x6E7
CLASSIFIER_FILE = "classifier.pt"
#: export.json's words for who labelled the pool (`pool_labels`).
LABELLED_BY = {
    "gan": "the semi-supervised GAN's classifier (model=ssgan_mlp)",
    "self_training": "self-training: the project's classifier with tuned classical augmentation, two rounds",
}
#: review.png shows this many of each class's least confident pool images.
REVIEWED = 10


def expand_folder(
    path: str | Path,
    out: str | Path,
    per_class: int | None = None,
    fmt: str = "imagefolder",
    augmenter: str | Path = "omniglot",
    measure: str | bool = "auto",
    **settings: Any,
) -> dict[str, Any]:
    """Expand the ImageFolder `path` into `out`, as `python -m handwriting_gan.expand` does. `settings`
    are any other keys of conf/expand.yaml: nested mappings (`arm_classifier={"steps": 300}`) or dotted
    names (`**{"dataset.ink": "dark"}`) change only the keys they name; `cache_dir` sets paths.cache_dir.
    Returns {"out", "format", "num_real", "num_synthetic", "class_counts", "skipped", "report" (report.json's
    content, or None when not measured), "seconds"}."""
    values: dict[str, Any] = {
        "path": None if path is None else str(path),
        "out": None if out is None else str(out),
        "per_class": per_class,
        "format": fmt,
        "augmenter": str(augmenter),
        "measure": measure,
    }
    for key, value in settings.items():
        key = "paths.cache_dir" if key == "cache_dir" else key
        *parents, leaf = key.split(".")
        node = values
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = str(value) if isinstance(value, Path) else value
    return expand(expand_config(values))


def expand(cfg: DictConfig) -> dict[str, Any]:
    """The command: check `cfg` (conf/expand.yaml), then expand."""
    plan = check_plan(cfg)
    set_threads(plan.threads)
    return run(plan)


@dataclass(frozen=True)
class Folder:
    """The user's folder as the folder dataset converted it."""

    class_names: tuple[str, ...]
    images: torch.Tensor  # uint8 (N, 1, H, W), listing order
    labels: torch.Tensor
    #: Each image's file, relative to the folder; and every file left out, with the reason.
    originals: list[str]
    skipped: list[dict[str, str]]
    digest: str

    @classmethod
    def read(cls, plan: Plan) -> Folder:
        from handwriting_gan.data.conversion import Conversion

        datamodule = plan.datamodule()
        listing = datamodule.listing()
        if len(listing.class_names) < 2:
            raise DataError(
                f"path={plan.path} has one class folder ({listing.class_names[0]!r}); a labelled dataset "
                f"needs at least two classes. Add a sub-folder of images for each other class."
            )
        images, labels = datamodule.converted()
        conversion = Conversion.load(datamodule.cache_path())  # which file each image is, what was skipped
        key = datamodule.preprocessing.key
        return cls(
            listing.class_names,
            images.unsqueeze(1),
            labels,
            [listing.files[index] for index in conversion.kept.tolist()],
            [
                {"file": file, "class": listing.class_names[label], "reason": reason}
                for file, label, reason in conversion.skipped
            ],
            hashlib.sha256(f"{listing.digest}\n{key}".encode()).hexdigest()[:24],
        )

    @property
    def counts(self) -> list[int]:
        return torch.bincount(self.labels, minlength=len(self.class_names)).tolist()


def run(plan: Plan) -> dict[str, Any]:
    """Expand as `plan` says; everything checked before the work folder is made."""
    if plan.unlabeled is not None:
        return run_with_pool(plan)
    started = time.perf_counter()
    say(
        f"Expanding {plan.path} into {plan.out} (finished steps are kept in {plan.work} until it is complete)"
    )
    check_target(plan.out, plan.path, plan.overwrite)
    augmenter, folder = prepare(plan)
    counts = folder.counts
    targets = plan.targets(counts, folder.class_names)
    measuring = plan.measures(counts, folder.class_names)
    skipped = f", {len(folder.skipped)} skipped (listed in export.json)" if folder.skipped else ""
    sizes = f"{min(counts)}" if min(counts) == max(counts) else f"{min(counts)} to {max(counts)}"
    say(f"Read {len(folder.labels)} images of {len(counts)} classes, {sizes} per class{skipped}")
    if not measuring and plan.measure == "auto":
        say("Not measuring the gain: measure=auto measures when every class has at least 4 usable images.")
    work = WorkFolder(
        plan.work,
        {
            **plan.identity(),
            "measure": measuring,
            "images": f"{len(folder.labels)} images, listing and preprocessing {folder.digest}",
            "augmenter_file": file_digest(augmenter_file(plan.augmenter)),
        },
    )
    if work.open():
        say(f"Continuing the expansion stored in {plan.work}")
    # Variations per real image: the expanded dataset's share, also what (g) of the measurement adds.
    variations = max(1, round((sum(targets) - sum(counts)) / sum(counts)))
    try:
        records = measure_all(plan, folder, augmenter, variations, work) if measuring else None
        made = work.synthetic()
        if made is None:
            made = generate(plan, augmenter, folder, targets)
            work.save_synthetic(*made)
        expanded = Expanded.of((folder.images, folder.labels), made)
        summary = summarize(records, plan.path, len(counts)) if records else None
        write_out(plan, folder, expanded, augmenter, summary, measuring)
    except KeyboardInterrupt:
        say(f"Stopped. Run the same command again to continue from the steps kept in {plan.work}.")
        raise
    work.remove()
    seconds = time.perf_counter() - started
    num_synthetic = len(expanded.labels) - expanded.num_real
    say(
        f"Wrote {plan.out}: {expanded.num_real} real + {num_synthetic} synthetic images of {len(counts)} "
        f"classes ({plan.format}), samples.png"
        + (", report.md" if summary else "")
        + f". Total time {duration(seconds)}."
    )
    return {
        "out": str(plan.out.resolve()),
        "format": plan.format,
        "num_real": expanded.num_real,
        "num_synthetic": num_synthetic,
        "class_counts": expanded.class_counts(folder.class_names),
        "skipped": len(folder.skipped),
        "report": summary,
        "seconds": seconds,
    }


def prepare(plan: Plan) -> tuple[Augmenter, Folder]:
    """The augmenter and the converted folder, checked against each other and the format."""
    augmenter = Augmenter.load(plan.augmenter, plan.device)
    augmenter.batch_size = plan.batch_size
    folder = Folder.read(plan)
    augmenter.check_fits(plan.image_shape, folder.class_names)
    check_label_bytes(plan, folder)
    return augmenter, folder


def check_label_bytes(plan: Plan, folder: Folder) -> None:
    if plan.format == "idx" and len(folder.class_names) > 256:
        raise ConfigError(
            f"format=idx stores labels as bytes, for at most 256 classes; path={plan.path} has "
            f"{len(folder.class_names)}. Use format=npz or format=imagefolder."
        )


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:24]


def write_out(
    plan: Plan,
    folder: Folder,
    expanded: Expanded,
    augmenter: Augmenter,
    summary: dict[str, Any] | None,
    measuring: bool,
) -> None:
    """`out`, whole: the dataset, samples.png, the report and, last, export.json, written into a
    temporary sibling renamed into place (the export command's partial_folder)."""
    generator_file = augmenter_file(plan.augmenter)
    record = folder_manifest(
        plan,
        folder,
        expanded,
        augmenter={
            **augmenter.describe(),
            "file": str(generator_file.resolve()),
            "sha256": file_digest(generator_file),
            "seed": plan.seed,
            "sources": "each synthetic image's `source` is the real image it varies"
            if augmenter.image_conditional
            else "each synthetic image's `source` is the real image whose class it was drawn for",
        },
        settings={
            **{key: value for key, value in plan.identity().items() if key != "path"},
            "measure": measuring,
            "format": plan.format,
            "per_class_rule": "per_class images of each class"
            if plan.per_class
            else "10 x each class's real images",
        },
        measurement=None
        if summary is None
        else {"gain": summary["gain"], "sentence": summary["sentence"], "report": REPORT_JSON},
    )
    sheets = {
        SAMPLES_FILE: samples_sheet(expanded, folder.class_names, plan.shown_real, plan.shown_variations)
    }
    write_folder(plan, folder, expanded, record, summary, sheets)


def folder_manifest(plan: Plan, folder: Folder, expanded: Expanded, **provenance: Any) -> dict[str, Any]:
    """export.json of an expansion of `folder`: writing.manifest with what every expansion records."""
    return manifest(
        fmt=plan.format,
        source_folder=plan.path,
        class_names=folder.class_names,
        expanded=expanded,
        originals=folder.originals,
        skipped=folder.skipped,
        **provenance,
    )


def write_folder(
    plan: Plan,
    folder: Folder,
    expanded: Expanded,
    record: dict[str, Any],
    summary: dict[str, Any] | None,
    sheets: dict[str, Any],
    pool_files: tuple[str, ...] = (),
    copies: dict[str, Path] | None = None,
    render: Callable[[dict[str, Any]], str] = markdown,
) -> None:
    """`out`, whole: the dataset, the `sheets` (file name -> picture), `copies` (file name -> file), the
    report and, last, export.json (`record`), written into a temporary sibling renamed into place (the
    export command's partial_folder)."""
    with (
        Progress(f"Writing {len(expanded.labels)} images ({plan.format})", 1) as progress,
        partial_folder(plan.out, plan.overwrite) as partial,
    ):
        write_dataset(partial, plan.format, expanded, folder.class_names, pool_files)
        for name, sheet in sheets.items():
            sheet.save(partial / name)
        for name, file in (copies or {}).items():
            shutil.copyfile(file, partial / name)
        if summary is not None:
            (partial / REPORT_MD).write_text(render(summary))
            (partial / REPORT_JSON).write_text(json.dumps(summary, indent=2) + "\n")
        (partial / EXPORT_FILE).write_text(json.dumps(record, indent=1) + "\n")  # last: what marks it whole
        progress.advance()


def run_with_pool(plan: Plan) -> dict[str, Any]:
    """Expand with a pool of unlabelled images: the semi-supervised GAN labels it (expand/pool.py), and
    `out` holds the labelled images, then the pool's with their predicted labels and confidences."""
    from handwriting_gan.expand.pool import (
        GAN_FOLDER,
        label_pool,
        read_pool,
        self_training_labels,
        train_gan,
    )

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
        if plan.pool_labels == "gan":
            classifier_file = train_gan(plan, work.path / GAN_FOLDER, len(folder.labels), len(pool.images))
            predicted = label_pool(classifier_file, pool, work.path, plan.device)
        else:
            classifier_file = None
            predicted = self_training_labels(
                plan, folder.images, folder.labels, len(folder.class_names), pool, work.path
            )
        summary = pool_summary(records, plan.path, len(counts)) if records else None
        keep = predicted.confidence >= plan.min_confidence
        expanded = Expanded.with_pool(
            (folder.images, folder.labels),
            (pool.images[keep], predicted.labels[keep], predicted.confidence[keep], pool.pool_index[keep]),
        )
        if plan.min_confidence > 0:
            say(
                f"Kept {int(keep.sum())} of {len(keep)} pool images labelled with confidence >= "
                f"{plan.min_confidence}"
            )
        record = folder_manifest(
            plan,
            folder,
            expanded,
            augmenter=None,
            settings={
                **{key: value for key, value in plan.identity().items() if key != "path"},
                "measure": measuring,
                "format": plan.format,
                "min_confidence": plan.min_confidence,
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
    say(
        f"Wrote {plan.out}: {len(folder.labels)} labelled + {expanded.num_pool} pseudo-labelled pool images "
        f"of {len(counts)} classes ({plan.format}), review.png"
        + (", classifier.pt" if plan.pool_labels == "gan" else "")
        + f". Total time {duration(seconds)}."
    )
    return {
        "out": str(plan.out.resolve()),
        "format": plan.format,
        "num_real": expanded.num_real,
        "num_labelled": len(folder.labels),
        "num_pseudo_labelled": expanded.num_pool,
        "num_synthetic": 0,
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


def measure_all(
    plan: Plan, folder: Folder, augmenter: Augmenter, variations: int, work: WorkFolder
) -> list[dict]:
    """Every seed of the measurement, each step stored in `work` as it finishes."""
    records = []
    for seed in range(plan.seeds):
        record = work.seed_record(seed)
        finished = (plan.search.trials if "classical_choice" in record else 0) + len(record["arms"])
        with Progress(f"Measuring, seed {seed + 1} of {plan.seeds}", steps_of(plan), finished) as progress:
            if finished < steps_of(plan):
                record = measure_seed(
                    plan,
                    folder.images,
                    folder.labels,
                    len(folder.class_names),
                    augmenter,
                    variations,
                    record,
                    work.save_seed,
                    progress.advance,
                )
        records.append(record)
    return records


def generate(plan: Plan, augmenter: Augmenter, folder: Folder, targets: list[int]):
    """The synthetic images that bring each class to its target: ceil(missing / real) variations of each of
    its real images, the first `missing` of them (copy k of every image before copy k + 1), each class
    from its own seeded stream. Returns (images, labels, index of each one's real image)."""
    parts = []
    with Progress(f"Generating with augmenter={plan.augmenter}", len(targets)) as progress:
        for label, target in enumerate(targets):
            members = torch.nonzero(folder.labels == label).flatten()
            missing = target - len(members)
            if missing > 0:
                made, labels, sources = augmenter.vary(
                    folder.images[members],
                    folder.labels[members],
                    math.ceil(missing / len(members)),
                    stream_seed(plan.seed, label, GENERATION_STREAM),
                )
                parts.append((made[:missing], labels[:missing], members[sources[:missing]]))
            progress.advance(str(folder.class_names[label]))
    if not parts:
        empty = folder.images[:0]
        return empty, folder.labels[:0], torch.zeros(0, dtype=torch.int64)
    return tuple(torch.cat([part[i] for part in parts]) for i in range(3))


def _task(cfg: DictConfig) -> dict[str, Any]:
    # Progress goes to stderr, so stdout carries only the report.
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    result = expand(cfg)
    if result["report"] is not None:
        print(markdown(result["report"]), flush=True)
    return result


def main() -> None:
    command("expand", _task)()
