"""The expand command and its Python function, `expand_folder`: check the plan, read the folder, measure
(each seed's steps kept in the work folder), make the synthetic images (kept too), and write `out` whole,
in the order a person reads the console."""

from __future__ import annotations

import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from handwriting_gan.augmenter import Augmenter, augmenter_file
from handwriting_gan.data.exports import check_target
from handwriting_gan.expand.measure import measure_seed, steps_of, stream_seed
from handwriting_gan.expand.pool import run_with_pool
from handwriting_gan.expand.progress import Progress
from handwriting_gan.expand.reading import Folder, check_label_bytes
from handwriting_gan.expand.report import REPORT_JSON, markdown, summarize
from handwriting_gan.expand.settings import Plan, check_plan, expand_config
from handwriting_gan.expand.store import WorkFolder
from handwriting_gan.expand.writing import (
    SAMPLES_FILE,
    Expanded,
    augmenter_record,
    folder_manifest,
    samples_sheet,
    write_folder,
)
from handwriting_gan.files import file_digest
from handwriting_gan.shell import command, duration, say, set_threads

#: Mixed into the seed of each class's synthetic images for the expanded dataset.
GENERATION_STREAM = 0x6E7


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
    record = folder_manifest(
        plan,
        folder,
        expanded,
        augmenter=augmenter_record(
            plan,
            augmenter,
            "each synthetic image's `source` is the real image it varies"
            if augmenter.image_conditional
            else "each synthetic image's `source` is the real image whose class it was drawn for",
        ),
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
