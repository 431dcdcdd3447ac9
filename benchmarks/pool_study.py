"""The pool arms on what `benchmarks/semi_supervised.py`'s expansions left: which way of labelling the pool
helps a classifier most, on MNIST's test split read as a user's scans would be? Print the table of
`python -m handwriting_gan.study.pool` (study/pool_report.py), per seed and paired.

For each seed, the labelled folder and the pool that semi_supervised.py wrote (K labelled MNIST images per
class, drawn as `dataset.labels_per_class=K` draws them, and every other training image), read as the
expand command read them (the folder preprocessing), and the classifier.pt of that seed's expansion (its
semi-supervised GAN). The arms (handwriting_gan/augment/pool.py) train the study's classifier
(conf/study.yaml's arm_classifier recipe, the same steps for every arm) on: (a) the labelled images; (b) +
their classical copies, tuned on a validation part of them; (s) (b) + the pool labelled by self-training
(two rounds, the threshold chosen on a validation part of the labelled images); (p) (b) + the pool
labelled by the expansion's GAN; (q) (p) + one variation of every image by the shipped augmenter; (r)
self-training started from (p)'s classifier; (t) (b) + the pool with its TRUE labels, an oracle. Every
choice is made on labelled validation images; the test split is only scored. Each seed's results go to
<work>/expand_<K>/seed_<s>.json, and a run continues from them; a stored seed without an arm added since
is measured again.

For a dataset's own split (Chars74K, Omniglot, MNIST as it is stored) the command itself measures the same
arms with a GAN of its own: python -m handwriting_gan.study.pool dataset=<name> labels_per_class=K.

Usage: python benchmarks/pool_study.py --from-expand /tmp/hwgan_semi_supervised --labels 10 --seeds 0 1 2
       [--arm-steps 2000] [--data-dir ../shared/data] [--work /tmp/hwgan_pool_study] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from handwriting_gan.augment.classical import Search
from handwriting_gan.augment.pool import (
    POOL_ARMS,
    one_variation,
    pool_arms,
    tuned_copies,
)
from handwriting_gan.augmenter import Augmenter
from handwriting_gan.config import compose_config
from handwriting_gan.metrics.classifier import (
    ClassifierSettings,
    accuracy,
    fit_for_steps,
    predict,
    settings_for_steps,
)
from handwriting_gan.models.classifier_file import load_classifier
from handwriting_gan.study.pool_report import pool_rows


def expanded_source(args, seed: int):
    """The folders that benchmarks/semi_supervised.py wrote for `seed` and expanded, as the expand command
    read them (the folder preprocessing): labelled images, the pool, its true labels (the MNIST draw's
    hidden ones, in the pool's file order), the converted test split, and the number of classes."""
    from semi_supervised import converted_test

    from handwriting_gan.data.folder import FolderDataModule
    from handwriting_gan.data.mnist import MNISTDataModule

    root = Path(args.from_expand)
    folder = FolderDataModule(
        path=str(root / f"seed_{seed}" / "labelled"),
        unlabeled=str(root / f"seed_{seed}" / "pool"),
        cache_dir=str(root / f"seed_{seed}" / "cache"),
        test_fraction=0.0,
        batch_size=100,
        sample_grid=4,
    )
    split = folder.label_split()
    names = torch.tensor([int(name) for name in folder.class_names])
    hidden = MNISTDataModule(
        root=args.data_dir,
        download=False,
        batch_size=100,
        image_shape=[1, 28, 28],
        sample_grid=4,
        seed=seed,
        labels_per_class=args.labels,
    ).hidden_labels()
    test = converted_test(args.data_dir, root)
    return split.labelled[0], names[split.labelled[1]], split.unlabelled, hidden[split.source_index], test, 10


def run_seed(args, seed: int, work: Path) -> dict:
    record_file = work / f"seed_{seed}.json"
    if record_file.is_file():
        stored = json.loads(record_file.read_text())
        if all(arm.key in stored["arms"] for arm in POOL_ARMS):
            return stored  # a seed stored before an arm was added is measured again, whole
    started = time.perf_counter()
    study = compose_config([], config_name="study")
    steps, settings = settings_for_steps(
        {**OmegaConf.to_container(study.arm_classifier), "steps": args.arm_steps},
        ClassifierSettings.from_mapping(OmegaConf.to_container(study.classifier)),
    )
    search = Search.from_mapping(OmegaConf.to_container(study.classical_search))
    images, labels, pool, truth, (test_images, test_labels), num_classes = expanded_source(args, seed)
    gan_file = Path(args.from_expand) / f"seed_{seed}" / "out" / "classifier.pt"

    def fit(fit_images, fit_labels, fit_steps=steps):
        return fit_for_steps(fit_images, fit_labels, num_classes, settings, fit_steps, seed, "cpu")[0]

    record = {"seed": seed, "labelled": len(labels), "pool": len(pool), "test": len(test_labels)}
    print(
        f"seed {seed}: {len(labels)} labelled, {len(pool)} in the pool, {len(test_labels)} test images",
        flush=True,
    )
    best, trials, copies = tuned_copies((images, labels), num_classes, search, fit, accuracy, seed)
    record["classical_choice"] = {"setting": best.as_dict(), "trials": trials}

    discriminator = load_classifier(gan_file)
    gan_labels = discriminator.label(pool)[0]
    vary = one_variation(Augmenter.load("omniglot"), seed)
    record["discriminator"] = float((discriminator.label(test_images)[0] == test_labels).float().mean())
    record["pool_gan_right"] = float((gan_labels == truth).float().mean())
    record.update(
        pool_arms(
            (images, labels),
            pool,
            (test_images, test_labels),
            copies,
            gan_labels,
            fit,
            predict,
            accuracy,
            seed,
            truth,
            say=lambda message: print(f"  {message}", flush=True),
            vary=vary,
        )
    )
    print(f"  the discriminator: {record['discriminator']:.2%}", flush=True)
    record["seconds"] = time.perf_counter() - started
    record_file.write_text(json.dumps(record, indent=1) + "\n")
    return record


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--from-expand",
        required=True,
        help="the --work folder of benchmarks/semi_supervised.py: its folders and each seed's classifier.pt",
    )
    parser.add_argument("--labels", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arm-steps", type=int, default=2000)
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--work", default="/tmp/hwgan_pool_study")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work) / f"expand_{args.labels}"
    work.mkdir(parents=True, exist_ok=True)
    records = [run_seed(args, seed, work) for seed in args.seeds]
    first = records[0]
    print(
        f"\nMNIST read as the expand command read it, {args.labels} labels per class ({first['labelled']} in "
        f"all), a pool of {first['pool']}, {first['test']} test images; each seed's GAN is its expansion's; "
        f"machine {platform.machine()}, {args.threads} threads, arm classifiers {args.arm_steps} steps\n"
    )
    print("\n".join(pool_rows(records)))


if __name__ == "__main__":
    main()
