"""Expanding a folder of K labelled MNIST images per class with a pool of the other training images, end to
end as a user runs it, and what its semi-supervised GAN's classifier scores: print a table.

For each seed (a label draw): the MNIST training split is written as two folders of PNGs, K labelled
images per class (drawn as `dataset.labels_per_class=K` draws them, by seed) in class folders and every
other training image, unlabelled, in one flat pool folder; then `python -m handwriting_gan.expand
path=<labelled> unlabeled=<pool> out=<out> measure=false` runs in its own process (its progress lines on
this console). Rows: the command's wall time and peak memory (resident set of the process and its
workers); the test error of the classifier it leaves (out/classifier.pt) on MNIST's 10,000 test images,
written as PNGs and read with the folder preprocessing that the labelled folder and the pool went
through, as a user's next scans would be; the share of the pool labelled right; and the speed of
labelling (images per second, after a warm-up). The test split is only scored, never used to choose.

Usage: python benchmarks/semi_supervised.py [--data-dir ../shared/data] [--labels 10] [--seeds 0 1 2]
       [--batches 30000] [--work /tmp/semi] [--threads 2] [-- <expand overrides, e.g.
       pool_gan.lr_decay_fraction=1.0>]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from handwriting_gan.data.folder import FolderDataModule
from handwriting_gan.data.mnist import MNISTDataModule
from handwriting_gan.models.classifier_file import load_classifier


def write_folders(data_dir: str, labels: int, seed: int, root: Path) -> tuple[Path, Path, torch.Tensor]:
    """<root>/labelled/<digit>/*.png and <root>/pool/*.png; returns them and the pool's true labels in the
    pool's sorted file order (the file names sort as the pool's images are numbered)."""
    datamodule = MNISTDataModule(
        root=data_dir,
        download=False,
        batch_size=100,
        image_shape=[1, 28, 28],
        sample_grid=4,
        seed=seed,
        labels_per_class=labels,
    )
    split = datamodule.label_split()
    labelled, pool = root / "labelled", root / "pool"
    shutil.rmtree(root, ignore_errors=True)
    for index, (image, label) in enumerate(zip(*split.labelled, strict=True)):
        (labelled / str(int(label))).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[0].numpy()).save(labelled / str(int(label)) / f"{index:03d}.png")
    pool.mkdir(parents=True)
    for index, image in enumerate(split.unlabelled):
        Image.fromarray(image[0].numpy()).save(pool / f"{index:05d}.png")
    return labelled, pool, datamodule.hidden_labels()


def converted_test(data_dir: str, root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST's test split as a user's scans would reach the classifier: written as PNGs in class folders
    and read with the folder dataset's preprocessing (the pool's and the labelled folder's)."""
    folder = root / "test"
    if not folder.is_dir():
        images, labels = MNISTDataModule(
            root=data_dir, download=False, batch_size=100, image_shape=[1, 28, 28], sample_grid=4
        ).split(train=False)
        for index, (image, label) in enumerate(zip(images, labels, strict=True)):
            (folder / str(int(label))).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image[0].numpy()).save(folder / str(int(label)) / f"{index:05d}.png")
    test = FolderDataModule(
        path=str(folder), cache_dir=str(root / "cache"), test_fraction=0.0, batch_size=100, sample_grid=4
    )
    images, labels = test.split(train=True)
    return images, torch.tensor([int(test.class_names[label]) for label in labels])


def labelling_speed(classifier, images: torch.Tensor) -> float:
    classifier.label(images[:4096])  # warm-up
    started = time.perf_counter()
    classifier.label(images)
    return len(images) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--labels", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batches", type=int, default=30000)
    parser.add_argument("--work", default="/tmp/hwgan_semi_supervised")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("overrides", nargs="*", help="more expand overrides, after --")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    test = converted_test(args.data_dir, Path(args.work))
    print(
        f"machine: {platform.processor() or platform.machine()}, {args.threads} threads, "
        f"torch {torch.__version__}"
    )
    print(
        f"MNIST, {args.labels} labels per class, the rest of the training split as the pool; "
        f"pool_gan.batches={args.batches}{''.join(' ' + o for o in args.overrides)}\n"
    )
    print(
        "| seed | expand wall time | peak memory | classifier test error | pool labelled right "
        "| labelling speed |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for seed in args.seeds:
        root = Path(args.work) / f"seed_{seed}"
        labelled, pool, truth = write_folders(args.data_dir, args.labels, seed, root)
        out = root / "out"
        command = [
            sys.executable,
            "-m",
            "handwriting_gan.expand",
            f"path={labelled}",
            f"unlabeled={pool}",
            f"out={out}",
            "measure=false",
            "pool_labels=gan",
            "format=npz",
            f"seed={seed}",
            f"pool_gan.batches={args.batches}",
            f"threads={args.threads}",
            f"paths.cache_dir={root / 'cache'}",
            *args.overrides,
        ]
        started = time.perf_counter()
        # The command's progress lines (its stderr) show on this console; the table is on stdout.
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        # This seed's command's own peak (with its conversion workers), not the largest of all seeds so
        # far as getrusage(RUSAGE_CHILDREN) would give.
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status):
            raise SystemExit(f"the expand command of seed {seed} failed: {' '.join(command)}")
        peak = usage.ru_maxrss / 2**20  # KiB -> GiB
        classifier = load_classifier(out / "classifier.pt")
        images, labels = test
        error = (classifier.label(images)[0] != labels).float().mean().item()
        written = np.load(out / "dataset.npz")  # the pool is scored as the command wrote it
        from_pool = written["origin"] == 1
        order = torch.from_numpy(written["pool_index"][from_pool])
        right = (torch.from_numpy(written["labels"][from_pool]) == truth[order]).float().mean().item()
        speed = labelling_speed(classifier, torch.from_numpy(written["images"][from_pool]).unsqueeze(1))
        print(
            f"| {seed} | {seconds / 60:.1f} min | {peak:.2f} GiB | {error:.2%} | {right:.2%} | "
            f"{speed:,.0f} images/s |",
            flush=True,
        )


if __name__ == "__main__":
    main()
