"""The study's three datasets on real files, read by the MNIST domain classifier: print a table.

Each row loads one dataset through its config (the project's own loader and preprocessing) and measures
how well the MNIST domain classifier (the default recipe on the full MNIST training split, cached under
`--cache-dir/classifiers/`, trained first if absent) reads its digits 0-9, upright as the loader gives
them and transposed (EMNIST's stored orientation). A loader that leaves characters transposed, mirrored
or mislabelled, or a preprocessing far from MNIST's, shows as a low upright column.

Rows: MNIST's test split (the reference); EMNIST balanced (by default the real subset in
<data-dir>/emnist_balanced_subset: the first 2,000 training and 2,000 test images only, so NOT an EMNIST
result; point --emnist-dir at a folder holding the full EMNIST/raw/ for that); Chars74K EnglishHnd from
<data-dir>/Chars74K (its first load preprocesses the 3,410 scans into the cache: minutes).

Usage: python benchmarks/real_datasets.py [--data-dir ../shared/data] [--emnist-dir DIR]
       [--cache-dir cache] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from pathlib import Path

import torch

from handwriting_gan.config import compose_config, instantiate
from handwriting_gan.data.conversion import report_path
from handwriting_gan.metrics.cache import load_or_train
from handwriting_gan.metrics.classifier import DEFAULT_SETTINGS, accuracy, extract

HEADER = (
    "dataset",
    "files",
    "classes",
    "images (train / test)",
    "skipped",
    "digits read",
    "upright",
    "transposed",
    "load time",
)


def load(overrides: list[str]):
    """The dataset of `overrides` with both splits loaded, and the seconds that took."""
    datamodule = instantiate(compose_config([*overrides, "dataset.download=false"], run_dir="unused").dataset)
    started = time.perf_counter()
    datamodule.split(train=True)
    datamodule.split(train=False)
    return datamodule, time.perf_counter() - started


def digits(datamodule, splits: tuple[bool, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """The images labelled 0-9 (by class name, so any label order works), with the digit as label."""
    digit_of = {label: int(name) for label, name in enumerate(datamodule.class_names) if str(name).isdigit()}
    images, labels = (torch.cat(parts) for parts in zip(*(datamodule.split(t) for t in splits), strict=True))
    keep = torch.tensor([int(label) in digit_of for label in labels], dtype=torch.bool)
    return images[keep], torch.tensor([digit_of[int(label)] for label in labels[keep]], dtype=torch.int64)


def row(name: str, files: str, datamodule, seconds: float, skipped: str, classifier, splits) -> str:
    images, labels = digits(datamodule, splits)
    upright = accuracy(classifier, images, labels)
    transposed = accuracy(classifier, images.transpose(2, 3), labels)
    train, test = (len(datamodule.split(train=t)[1]) for t in (True, False))
    which = "test split" if splits == (False,) else "both splits"
    cells = [
        name,
        files,
        str(datamodule.num_classes),
        f"{train:,} / {test:,}",
        skipped,
        f"{len(labels):,} ({which})",
        f"{100 * upright:.2f}%",
        f"{100 * transposed:.2f}%",
        f"{seconds:.1f} s",
    ]
    return "| " + " | ".join(cells) + " |"


def per_class_table(name: str, datamodule, cache_dir: str) -> str:
    """The dataset's own domain classifier (the one evaluate and export use, from the same cache) on its
    held-out test images, class by class: the overall accuracy, then one row per class."""
    own = load_or_train(datamodule, cache_dir, DEFAULT_SETTINGS)
    images, labels = datamodule.split(train=False)
    _, predicted = extract(own.classifier, images)
    predicted = predicted.cpu()
    lines = [
        f"{name}'s own domain classifier ({own.path}): {100 * own.test_acc:.2f}% on its {len(labels):,} "
        f"held-out test images.\n",
        "| class | test images | correct |",
        "| --- | ---: | ---: |",
    ]
    for label, class_name in enumerate(datamodule.class_names):
        mine = labels == label
        right = int((predicted[mine] == label).sum())
        lines.append(
            f"| {class_name} | {int(mine.sum())} | {right} ({100 * right / max(int(mine.sum()), 1):.0f}%) |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", default="../shared/data", help="holding MNIST/raw and Chars74K/")
    parser.add_argument(
        "--emnist-dir", default=None, help="holding EMNIST/raw (default: <data-dir>/emnist_balanced_subset)"
    )
    parser.add_argument("--cache-dir", default="cache", help="where the classifier and Chars74K are cached")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # training and preprocessing, on stderr
    if args.threads:
        torch.set_num_threads(args.threads)
    data_dir = Path(args.data_dir)
    emnist_dir = Path(args.emnist_dir or data_dir / "emnist_balanced_subset")
    cache = [f"paths.cache_dir={args.cache_dir}"]

    mnist, mnist_seconds = load(["dataset=mnist", f"paths.data_dir={data_dir}", *cache])
    cached = load_or_train(mnist, args.cache_dir, DEFAULT_SETTINGS)
    emnist, emnist_seconds = load(["dataset=emnist", f"paths.data_dir={emnist_dir}", *cache])
    emnist_images = sum(len(emnist.split(train=t)[1]) for t in (True, False))
    # The full balanced split has 112,800 + 18,800 images.
    emnist_files = f"{'full' if emnist_images == 131_600 else 'SUBSET'}, {emnist_dir}"
    chars74k, chars74k_seconds = load(["dataset=chars74k", f"paths.data_dir={data_dir}", *cache])
    report = json.loads(report_path(chars74k.cache_path()).read_text())
    chars74k_files = "archive" if chars74k.archive.is_file() else "unpacked tree"

    print(
        f"MNIST domain classifier: {cached.path} ({100 * cached.test_acc:.2f}% on MNIST's test split); "
        f"torch {torch.__version__}, {platform.processor() or 'cpu'}, {torch.get_num_threads()} threads. "
        f"Load time: both splits, from the cache where there is one.\n"
    )
    print("| " + " | ".join(HEADER) + " |")
    print("| --- | --- |" + " ---: |" * (len(HEADER) - 2))
    print(row("MNIST", "full", mnist, mnist_seconds, "-", cached.classifier, (False,)))
    print(row("EMNIST balanced", emnist_files, emnist, emnist_seconds, "-", cached.classifier, (True, False)))
    print(
        row(
            "Chars74K EnglishHnd",
            chars74k_files,
            chars74k,
            chars74k_seconds,
            f"{report['skipped']} of {report['images']:,}",
            cached.classifier,
            (True, False),
        )
    )
    print()
    print(per_class_table("Chars74K EnglishHnd", chars74k, args.cache_dir))


if __name__ == "__main__":
    main()
