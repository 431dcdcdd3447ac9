"""The export command: a finished run's generator turned into a labeled synthetic dataset on disk.

`python -m handwriting_gan.export run_dir=<run folder> [num_samples=10000 | per_class=M] [format=imagefolder]
[out=<folder>]` writes the dataset (formats: handwriting_gan.data.exports) and `export.json` into a
temporary sibling folder, renamed into place only once complete.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from handwriting_gan import __version__
from handwriting_gan.data.exports import (
    EXPORT_FILE,
    Samples,
    check_channels,
    check_format,
    check_target,
    partial_folder,
    write_export,
)
from handwriting_gan.errors import CheckpointError, ConfigError
from handwriting_gan.metrics.cache import load_or_train
from handwriting_gan.metrics.classifier import (
    DEFAULT_SETTINGS,
    ClassifierSettings,
    DomainClassifier,
)
from handwriting_gan.metrics.sampling import conditional_classes, draw_samples
from handwriting_gan.runs import RunFolder, classifier_for_run
from handwriting_gan.shell import check_count, choose_device, command, sets_node

log = logging.getLogger(__name__)

DEFAULT_NUM_SAMPLES = 10_000
#: With per_class and no max_draws: give up after this many times per_class x classes draws.
DRAW_ROUNDS = 20


@torch.no_grad()
def label_samples(
    classifier: DomainClassifier, images: torch.Tensor, requested: torch.Tensor | None, batch_size: int = 500
) -> tuple[torch.Tensor, torch.Tensor]:
    """(label, the classifier's probability of that label) per uint8 image: the requested class of a
    class-conditional generator's sample, else the classifier's most probable class."""
    classifier.eval()
    device = next(classifier.parameters()).device
    probabilities = torch.cat(
        [
            torch.softmax(classifier(images[start : start + batch_size].to(device)).float(), dim=1).cpu()
            for start in range(0, len(images), batch_size)
        ]
    )
    if requested is None:
        confidences, labels = probabilities.max(dim=1)
        return labels, confidences
    return requested, probabilities.gather(1, requested[:, None]).squeeze(1)


def draw_labeled(
    generator: nn.Module,
    classifier: DomainClassifier,
    num_samples: int,
    latent_dim: int,
    min_confidence: float,
    seed: int,
    batch_size: int,
) -> tuple[Samples, int]:
    """`num_samples` draws, labeled, minus those below `min_confidence`; returns them and the draw count."""
    images, requested = draw_samples(generator, num_samples, latent_dim, seed=seed, batch_size=batch_size)
    labels, confidences = label_samples(classifier, images, requested, batch_size)
    keep = confidences >= min_confidence
    if not keep.all():
        log.info(
            "Dropped %d of %d images below min_confidence=%s",
            int((~keep).sum()),
            num_samples,
            min_confidence,
        )
    indices = torch.nonzero(keep).flatten()
    return Samples(images[indices], labels[indices], confidences[indices], indices), num_samples


def draw_per_class(
    generator: nn.Module,
    classifier: DomainClassifier,
    per_class: int,
    targets: Sequence[int],
    class_names: Sequence[str],
    latent_dim: int,
    min_confidence: float,
    max_draws: int,
    seed: int,
    batch_size: int,
) -> tuple[Samples, int]:
    """Exactly `per_class` images of each label in `targets`, each labeled with probability at least
    `min_confidence`: the first such images in draw order, drawn in rounds of per_class x classes until
    every class is full or `max_draws` images were drawn; returns them and the draw count.

    A class-conditional generator is asked for every class equally often, so with min_confidence=0 the
    first round fills every class; an unconditional one is drawn from until the classifier has found
    enough of each. Raises ConfigError naming the classes still short after `max_draws`.
    """
    round_size = per_class * (conditional_classes(generator) or len(class_names))
    needed = dict.fromkeys(targets, per_class)
    parts: list[Samples] = []
    drawn, round_number = 0, 0
    while any(needed.values()) and drawn < max_draws:
        size = min(round_size, max_draws - drawn)
        # Round 0 uses `seed` itself (the draws num_samples=size would make); later rounds their own stream.
        round_seed = seed if round_number == 0 else _round_seed(seed, round_number)
        images, requested = draw_samples(generator, size, latent_dim, seed=round_seed, batch_size=batch_size)
        labels, confidences = label_samples(classifier, images, requested, batch_size)
        eligible = confidences >= min_confidence
        for label, missing in needed.items():
            if missing:
                chosen = torch.nonzero(eligible & (labels == label)).flatten()[:missing]
                needed[label] -= len(chosen)
                parts.append(Samples(images[chosen], labels[chosen], confidences[chosen], chosen + drawn))
        drawn += size
        round_number += 1
    short = {label: per_class - missing for label, missing in needed.items() if missing}
    if short:
        found = ", ".join(
            f"{class_names[label]!r} ({count} of {per_class})" for label, count in short.items()
        )
        raise ConfigError(
            f"per_class={per_class} with min_confidence={min_confidence}: after {drawn} draws "
            f"(max_draws={max_draws}) the generator gave too few images of {len(short)} of "
            f"{len(targets)} classes: {found}. "
            f"Lower min_confidence or per_class, raise max_draws, or train the generator longer."
        )
    order = torch.argsort(torch.cat([part.indices for part in parts]))  # draw order, not class by class
    merged = Samples(
        torch.cat([part.images for part in parts])[order],
        torch.cat([part.labels for part in parts])[order],
        torch.cat([part.confidences for part in parts])[order],
        torch.cat([part.indices for part in parts])[order],
    )
    return merged, drawn


def _round_seed(seed: int, round_number: int) -> int:
    """The seed of a later round: its own stream, derived from (seed, round), not seed + round."""
    return int(np.random.SeedSequence([seed % 2**63, round_number]).generate_state(1, np.uint64)[0] % 2**63)


def read_metrics(run: RunFolder) -> dict | None:
    """The evaluate command's metrics.json of `run`, or None when it has not been evaluated."""
    if not run.metrics_file.is_file():
        return None
    try:
        return json.loads(run.metrics_file.read_text())
    except (OSError, ValueError) as error:
        raise CheckpointError(
            f"{run.metrics_file} cannot be read ({error}); run `python -m handwriting_gan.evaluate "
            f"run_dir={run.path}` again to rewrite it, or delete it to export without metrics."
        ) from None


def export_run(
    run_dir: str | Path,
    out: str | Path | None = None,
    num_samples: int | None = None,
    seed: int = 0,
    min_confidence: float = 0.0,
    overwrite: bool = False,
    classifier: ClassifierSettings = DEFAULT_SETTINGS,
    device: str = "cpu",
    batch_size: int = 500,
    cache_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
    format: str = "imagefolder",
    per_class: int | None = None,
    max_draws: int | None = None,
) -> dict:
    """Generate images from `run_dir`'s generator.pt, label them, and write the dataset to `out` (default
    `<run_dir>/export`) in `format`: `num_samples` images (default 10,000), or with `per_class` exactly
    that many of each of the run's classes. Returns export.json's record plus the folder as `out`."""
    fmt = check_format(format)
    if per_class is not None and num_samples is not None:
        raise ConfigError(
            f"num_samples={num_samples} and per_class={per_class} both set the export's size; "
            f"give one of them."
        )
    run = RunFolder(run_dir)
    run_dir = run.path
    out = run.export_dir if out is None else Path(out).expanduser()
    generator, metadata, datamodule, cache_dir = run.load_generator(data_dir, cache_dir)
    check_channels(fmt, metadata["image_shape"])
    class_names = list(datamodule.class_names)
    targets = datamodule.selected_labels
    if per_class is not None:
        least = per_class * len(targets)
        max_draws = DRAW_ROUNDS * per_class * len(class_names) if max_draws is None else max_draws
        if max_draws < least:
            raise ConfigError(
                f"max_draws={max_draws} is less than the per_class={per_class} x {len(targets)} classes "
                f"= {least} images the export must hold; raise it or leave it null."
            )
    check_target(out, run_dir, overwrite)
    metrics = read_metrics(run)

    cached = load_or_train(datamodule, cache_dir, classifier, device)
    generator = generator.to(device)
    if per_class is None:
        num_samples = DEFAULT_NUM_SAMPLES if num_samples is None else num_samples
        samples, drawn = draw_labeled(
            generator,
            cached.classifier,
            num_samples,
            metadata["latent_dim"],
            min_confidence,
            seed,
            batch_size,
        )
    else:
        num_samples = per_class * len(targets)
        samples, drawn = draw_per_class(
            generator,
            cached.classifier,
            per_class,
            targets,
            class_names,
            metadata["latent_dim"],
            min_confidence,
            max_draws,
            seed,
            batch_size,
        )
    kept = len(samples.labels)
    record = {
        "run_dir": str(run_dir.resolve()),
        "generator_file": str(run.generator_file.resolve()),
        "dataset": type(datamodule).__name__,
        "format": fmt,
        "class_names": class_names,
        "conditional": conditional_classes(generator) > 0,
        "num_samples_requested": num_samples,
        "per_class": per_class,
        "num_drawn": drawn,
        "num_samples_kept": kept,
        "num_dropped": drawn - kept,
        "min_confidence": min_confidence,
        "class_counts": samples.class_counts(class_names),
        "seed": seed,
        "classifier_test_acc": cached.test_acc,
        "classifier_file": str(cached.path.resolve()),
        "metrics": metrics,
        "package_version": __version__,
    }
    with partial_folder(out, overwrite) as folder:
        write_export(folder, fmt, samples, class_names)
        (folder / EXPORT_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return {"out": str(out.resolve()), **record}


def _check_confidence(value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < 1.0:
        raise ConfigError(
            f"min_confidence={value} must be a probability in [0, 1), e.g. 0.9; 0 keeps every image."
        )
    return float(value)


def _optional_count(key: str, value, minimum: int) -> int | None:
    return None if value is None else check_count(key, value, minimum)


def export(cfg: DictConfig) -> dict:
    """The command: check `cfg` (conf/export.yaml), export, print one JSON line."""
    if cfg.run_dir is None:
        raise ConfigError(
            "run_dir is required: python -m handwriting_gan.export run_dir=outputs/<name>/<timestamp>"
        )
    fmt = check_format(cfg.format)
    if not isinstance(cfg.overwrite, bool):
        raise ConfigError(f"overwrite={cfg.overwrite} must be true or false.")
    summary = export_run(
        Path(str(cfg.run_dir)),
        out=None if cfg.out is None else str(cfg.out),
        num_samples=_optional_count("num_samples", cfg.num_samples, 1),
        seed=check_count("seed", cfg.seed, 0),
        min_confidence=_check_confidence(cfg.min_confidence),
        overwrite=cfg.overwrite,
        classifier=classifier_for_run(
            str(cfg.run_dir),
            ClassifierSettings.from_mapping(OmegaConf.to_container(cfg.classifier)),
            chosen=sets_node(cfg, "classifier"),
        ),
        device=choose_device(cfg.device),
        batch_size=check_count("batch_size", cfg.batch_size, 1),
        cache_dir=cfg.cache_dir,
        data_dir=cfg.data_dir,
        format=fmt,
        per_class=_optional_count("per_class", cfg.per_class, 1),
        max_draws=_optional_count("max_draws", cfg.max_draws, 1),
    )
    print(json.dumps(summary), flush=True)
    return summary


def _task(cfg: DictConfig) -> dict:
    # Progress (classifier training) goes to stderr, so stdout carries only the JSON line.
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    return export(cfg)


def main() -> None:
    command("export", _task)()


if __name__ == "__main__":
    main()
