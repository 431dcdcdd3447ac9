"""The export command: a finished run's generator turned into a labeled synthetic dataset on disk.

`python -m handwriting_gan.export run_dir=<run folder> [num_samples=10000] [out=<folder>]` writes
`<out>/<label>_<class name>/<index>.png` (torchvision's ImageFolder layout), `labels.csv` and
`export.json` into a temporary sibling folder, renamed into place only once complete.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import re
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from handwriting_gan import __version__
from handwriting_gan.errors import ConfigError
from handwriting_gan.metrics.cache import load_or_train
from handwriting_gan.metrics.classifier import DEFAULT_SETTINGS, ClassifierSettings, DomainClassifier
from handwriting_gan.metrics.sampling import conditional_classes, draw_samples
from handwriting_gan.runs import RunFolder
from handwriting_gan.shell import check_count, choose_device, command

log = logging.getLogger(__name__)

EXPORT_FILE = "export.json"
LABELS_FILE = "labels.csv"


def class_folders(class_names: Sequence[str]) -> list[str]:
    """One folder name per label: `<label>_<name>`, zero-padded so that sorting the names (as ImageFolder
    does) gives label order, and prefixed so that names differing only in case ('A', 'a') never collide."""
    width = max(2, len(str(len(class_names) - 1)))
    return [f"{label:0{width}d}_{_safe_name(name)}" for label, name in enumerate(class_names)]


def _safe_name(name: str) -> str:
    """`name` with every character that is not portable in a folder name replaced by '_'."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", str(name)) or "unnamed"


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


def check_target(out: Path, run_dir: Path, overwrite: bool) -> None:
    """Raise unless `out` can be written: absent, or (with overwrite) a previous export outside the run."""
    if not (out.exists() or out.is_symlink()):
        return
    if not overwrite:
        raise ConfigError(
            f"out={out} already exists; pass overwrite=true to replace it, or choose another out."
        )
    if out.resolve() in (run_dir.resolve(), *run_dir.resolve().parents):
        raise ConfigError(f"out={out} holds the run folder {run_dir}; choose an out outside the run.")
    if not out.is_dir() or (any(out.iterdir()) and not (out / EXPORT_FILE).is_file()):
        raise ConfigError(
            f"out={out} is not an export (it has no {EXPORT_FILE}); overwrite=true replaces only a previous "
            f"export. Choose another out, or remove {out} yourself."
        )


@contextlib.contextmanager
def partial_folder(out: Path, overwrite: bool) -> Iterator[Path]:
    """Yield an empty temporary folder beside `out`; it becomes `out` (replacing an old one only when
    `overwrite`) if the block succeeds, and is removed otherwise."""
    partial = out.parent / f".{out.name}.partial-{os.getpid()}"
    try:
        shutil.rmtree(partial, ignore_errors=True)  # left by a killed process that had this pid
        partial.mkdir(parents=True)
    except OSError as error:
        raise ConfigError(f"out={out} cannot be created: {error}.") from None
    try:
        yield partial
        if not out.exists():
            os.replace(partial, out)
        elif not overwrite:  # appeared while this export ran
            raise ConfigError(f"out={out} appeared during the export; pass overwrite=true to replace it.")
        else:
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
            try:
                os.replace(partial, out)
            except BaseException:
                os.replace(old, out)
                raise
            shutil.rmtree(old)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def write_dataset(
    folder: Path,
    images: torch.Tensor,
    labels: torch.Tensor,
    confidences: torch.Tensor,
    keep: torch.Tensor,
    class_names: Sequence[str],
) -> dict[str, int]:
    """The kept images as `<folder>/<class folder>/<sample index>.png` plus labels.csv; returns the
    number of images per class folder (every class gets a folder, so ImageFolder's index is the label)."""
    folders = class_folders(class_names)
    for name in folders:
        (folder / name).mkdir()
    counts = dict.fromkeys(folders, 0)
    pixels = images.numpy()
    with open(folder / LABELS_FILE, "w", newline="") as handle:
        rows = csv.writer(handle)
        rows.writerow(["file", "label", "class_name", "confidence"])
        for index in torch.nonzero(keep).flatten().tolist():
            label = int(labels[index])
            file = f"{folders[label]}/{index:06d}.png"
            image = pixels[index]
            Image.fromarray(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)).save(folder / file)
            rows.writerow([file, label, class_names[label], f"{float(confidences[index]):.6f}"])
            counts[folders[label]] += 1
    return counts


def export_run(
    run_dir: str | Path,
    out: str | Path | None = None,
    num_samples: int = 10_000,
    seed: int = 0,
    min_confidence: float = 0.0,
    overwrite: bool = False,
    classifier: ClassifierSettings = DEFAULT_SETTINGS,
    device: str = "cpu",
    batch_size: int = 500,
    cache_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
) -> dict:
    """Generate `num_samples` images from `run_dir`'s generator.pt, label them, and write the dataset to
    `out` (default `<run_dir>/export`); returns export.json's record plus the folder as `out`."""
    run = RunFolder(run_dir)
    run_dir = run.path
    out = run.export_dir if out is None else Path(out).expanduser()
    generator, metadata, datamodule, cache_dir = run.load_generator(data_dir, cache_dir)
    generator_file = run.generator_file
    check_target(out, run_dir, overwrite)

    cached = load_or_train(datamodule, cache_dir, classifier, device)
    images, requested = draw_samples(
        generator.to(device), num_samples, metadata["latent_dim"], seed=seed, batch_size=batch_size
    )
    labels, confidences = label_samples(cached.classifier, images, requested, batch_size)
    keep = confidences >= min_confidence
    kept = int(keep.sum())
    if kept < num_samples:
        log.info(
            "Dropped %d of %d images below min_confidence=%s", num_samples - kept, num_samples, min_confidence
        )

    record = {
        "run_dir": str(run_dir.resolve()),
        "generator_file": str(generator_file.resolve()),
        "dataset": type(datamodule).__name__,
        "conditional": conditional_classes(generator) > 0,
        "num_samples_requested": num_samples,
        "num_samples_kept": kept,
        "num_dropped": num_samples - kept,
        "min_confidence": min_confidence,
        "class_counts": {},
        "seed": seed,
        "classifier_test_acc": cached.test_acc,
        "classifier_file": str(cached.path.resolve()),
        "package_version": __version__,
    }
    with partial_folder(out, overwrite) as folder:
        record["class_counts"] = write_dataset(
            folder, images, labels, confidences, keep, datamodule.class_names
        )
        (folder / EXPORT_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return {"out": str(out.resolve()), **record}


def _check_confidence(value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < 1.0:
        raise ConfigError(
            f"min_confidence={value} must be a probability in [0, 1), e.g. 0.9; 0 keeps every image."
        )
    return float(value)


def export(cfg: DictConfig) -> dict:
    """The command: check `cfg` (conf/export.yaml), export, print one JSON line."""
    if cfg.run_dir is None:
        raise ConfigError(
            "run_dir is required: python -m handwriting_gan.export run_dir=outputs/<name>/<timestamp>"
        )
    if not isinstance(cfg.overwrite, bool):
        raise ConfigError(f"overwrite={cfg.overwrite} must be true or false.")
    summary = export_run(
        Path(str(cfg.run_dir)),
        out=None if cfg.out is None else str(cfg.out),
        num_samples=check_count("num_samples", cfg.num_samples, 1),
        seed=check_count("seed", cfg.seed, 0),
        min_confidence=_check_confidence(cfg.min_confidence),
        overwrite=cfg.overwrite,
        classifier=ClassifierSettings.from_mapping(OmegaConf.to_container(cfg.classifier)),
        device=choose_device(cfg.device),
        batch_size=check_count("batch_size", cfg.batch_size, 1),
        cache_dir=cfg.cache_dir,
        data_dir=cfg.data_dir,
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
