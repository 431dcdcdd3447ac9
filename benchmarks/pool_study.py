"""A few labels and a pool of unlabelled images: which way of labelling the pool helps a classifier most?
Print a table of the arms, per seed and paired, on a dataset's own test split.

For each seed (a label draw, as `dataset.labels_per_class=K` draws it), the training split is K labelled
images per class and a pool of every other training image, whose labels are hidden. The arms train the
study's classifier (conf/study.yaml's arm_classifier recipe, the same steps for every arm) on:
(a) the labelled images; (b) + their classical copies, tuned on a validation part of them (as the study
tunes (b)); (s) (b) + the pool labelled by self-training with (b)'s augmentation (two rounds, the
confidence threshold chosen on a validation part of the labelled images); (p) (b) + the pool labelled by
the semi-supervised GAN's classifier (model=ssgan_mlp trained on the labelled images and the pool for
--gan-batches batches); (q) (p) + one variation of every labelled and pool image by the shipped
augmenter (augmenter=omniglot, trained on other alphabets), labelled as (p) labels its source; (r)
self-training as (s), but started from (p)'s classifier (the GAN's labels refined); (t) (b) +
the pool with its TRUE labels, an oracle: the ceiling of labelling the pool by hand. The GAN's
discriminator is scored as a classifier too. Every choice is made on labelled validation images; the test
split is only scored. Each seed's results go to <work>/<case>/seed_<s>.json, and a run continues from them
(and from a GAN's checkpoint); a stored seed without an arm added since gets that arm.

Usage: python benchmarks/pool_study.py --case mnist --labels 10 [--seeds 0 1 2] [--gan-batches 30000]
       [--arm-steps 2000] [--data-dir ../shared/data] [--work /tmp/hwgan_pool_study] [--threads 2]
       python benchmarks/pool_study.py --from-expand /tmp/hwgan_semi_supervised --labels 10 --seeds 0
(--from-expand: the arms on the folders and classifier.pt that benchmarks/semi_supervised.py's
expansions left, the images as the expand command read them.)
Cases: mnist (the other training images are the pool), chars74k (its 45 training scans per class: K
labelled, the rest the pool; tested on the 10 held-out scans per class), omniglot (the held-out alphabets'
training drawers: K labelled, the rest the pool).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import lightning as L
import torch
from omegaconf import OmegaConf

from handwriting_gan.assembly import build
from handwriting_gan.augment.classical import Search
from handwriting_gan.augment.pool import POOL_ARMS, gan_arms, pool_arms, tuned_copies, with_copies
from handwriting_gan.augmenter import Augmenter
from handwriting_gan.config import compose_config
from handwriting_gan.metrics.classifier import (
    ClassifierSettings,
    accuracy,
    fit_for_steps,
    predict,
    settings_for_steps,
)
from handwriting_gan.models.classifier_file import load_classifier, save_classifier

CASES = {
    "mnist": ["dataset=mnist"],
    "chars74k": ["dataset=chars74k"],
    "omniglot": ["dataset=omniglot", "dataset.alphabets=held_out_a"],
}


def train_gan(case: str, labels: int, seed: int, batches: int, data_dir: str, work: Path) -> Path:
    """The semi-supervised GAN of this label draw (continued from its checkpoint); its classifier.pt."""
    run = work / f"ssgan_seed_{seed}"
    classifier_file = run / "classifier.pt"
    if classifier_file.is_file():
        return classifier_file
    overrides = [
        "model=ssgan_mlp",
        *CASES[case],
        f"paths.data_dir={data_dir}",
        f"dataset.labels_per_class={labels}",
        "dataset.batch_size=100",
        f"seed={seed}",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "~callbacks.samples",
        "~callbacks.losses",
    ]
    probe = build(compose_config(overrides, run_dir=run))[2]
    split = probe.label_split()
    per_epoch = max(len(split.labelled[0]), len(split.unlabelled)) // probe.batch_size
    epochs = max(1, -(-batches // per_epoch))
    overrides += [f"trainer.max_epochs={epochs}", f"model.lr_decay_epochs={round(0.2 * epochs)}"]
    cfg = compose_config(overrides, run_dir=run)
    checkpoint = run / "checkpoints" / "last.ckpt"
    print(f"  semi-supervised GAN: {epochs} epochs of {per_epoch} batches in {run}", flush=True)
    L.seed_everything(seed, verbose=False)
    trainer, game, datamodule = build(cfg)
    trainer.fit(game, datamodule=datamodule, ckpt_path=checkpoint if checkpoint.is_file() else None)
    save_classifier(classifier_file, game.classifier, cfg.model.discriminator, datamodule.class_names)
    return classifier_file


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


def variations(seed: int):
    """(q)'s vary: one variation of each image by the shipped augmenter, seeded."""
    augmenter = Augmenter.load("omniglot")

    def vary(images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        made, made_labels, _ = augmenter.vary(images, labels, 1, seed)
        return made, made_labels

    return vary


def run_seed(args, seed: int, work: Path) -> dict:
    record_file = work / f"seed_{seed}.json"
    stored = json.loads(record_file.read_text()) if record_file.is_file() else None
    if stored is not None and all(arm.key in stored["arms"] for arm in POOL_ARMS):
        return stored
    started = time.perf_counter()
    study = compose_config([], config_name="study")
    steps, settings = settings_for_steps(
        {**OmegaConf.to_container(study.arm_classifier), "steps": args.arm_steps},
        ClassifierSettings.from_mapping(OmegaConf.to_container(study.classifier)),
    )
    search = Search.from_mapping(OmegaConf.to_container(study.classical_search))
    if args.from_expand:
        images, labels, pool, truth, (test_images, test_labels), num_classes = expanded_source(args, seed)
        gan_file = Path(args.from_expand) / f"seed_{seed}" / "out" / "classifier.pt"
    else:
        datamodule = build(
            compose_config(
                [
                    "model=ssgan_mlp",
                    *CASES[args.case],
                    f"paths.data_dir={args.data_dir}",
                    f"dataset.labels_per_class={args.labels}",
                    f"seed={seed}",
                ],
                run_dir=work / "probe",
            )
        )[2]
        split = datamodule.label_split()
        images, labels = split.labelled
        pool, truth = split.unlabelled, datamodule.hidden_labels()
        test_images, test_labels = datamodule.split(train=False)
        num_classes = datamodule.num_classes
        gan_file = None

    def fit(fit_images, fit_labels, fit_steps=steps):
        return fit_for_steps(fit_images, fit_labels, num_classes, settings, fit_steps, seed, "cpu")[0]

    record = {"seed": seed, "labelled": len(labels), "pool": len(pool), "test": len(test_labels)}
    print(
        f"seed {seed}: {len(labels)} labelled, {len(pool)} in the pool, {len(test_labels)} test images",
        flush=True,
    )
    best, trials, copies = tuned_copies((images, labels), num_classes, search, fit, accuracy, seed)
    record["classical_choice"] = {"setting": best.as_dict(), "trials": trials}

    if gan_file is None:
        gan_file = train_gan(args.case, args.labels, seed, args.gan_batches, args.data_dir, work)
    discriminator = load_classifier(gan_file)
    gan_labels = discriminator.label(pool)[0]
    vary = variations(seed)
    if stored is not None:  # stored before (q) and (r) were measured: its arms stand, they join them
        chosen = json.loads(json.dumps(record["classical_choice"]["setting"]))  # as the JSON holds it
        if stored["classical_choice"]["setting"] != chosen:
            raise SystemExit(f"{record_file}: (b)'s tuning chooses differently now; delete it to rerun")
        fit_b = with_copies(fit, copies, (images, labels))
        added = gan_arms(
            (images, labels),
            pool,
            (test_images, test_labels),
            gan_labels,
            fit_b,
            predict,
            accuracy,
            stored["self_training"]["threshold"],
            vary,
            say=lambda message: print(f"  {message}", flush=True),
        )
        if abs(added["pool_gan"] - stored["arms"]["pool_gan"]) > 1e-9:
            print(f"  (p) measured again: {added['pool_gan']:.4f}, stored {stored['arms']['pool_gan']:.4f}")
        stored["arms"] = {**added, **stored["arms"]}
        stored["seconds_added_arms"] = time.perf_counter() - started
        record_file.write_text(json.dumps(stored, indent=1) + "\n")
        return stored
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
    parser.add_argument("--case", choices=sorted(CASES), default="mnist")
    parser.add_argument("--labels", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--gan-batches", type=int, default=30000)
    parser.add_argument("--arm-steps", type=int, default=2000)
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--work", default="/tmp/hwgan_pool_study")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--from-expand",
        help="the --work folder of benchmarks/semi_supervised.py (MNIST): its folders and the classifier.pt "
        "of each seed's expansion, instead of a dataset and a GAN of this script's own",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work) / (f"expand_{args.labels}" if args.from_expand else f"{args.case}_{args.labels}")
    work.mkdir(parents=True, exist_ok=True)
    records = [run_seed(args, seed, work) for seed in args.seeds]

    arms = [("a", "real", "labelled only"), ("b", "classical", "+ tuned classical aug.")]
    arms += [(arm.letter, arm.key, arm.name) for arm in POOL_ARMS]
    print(
        f"\n{args.case}, {args.labels} labels per class; machine {platform.machine()}, "
        f"{args.threads} threads; "
        f"GAN {args.gan_batches} batches, arm classifiers {args.arm_steps} steps\n"
    )
    seeds = " | ".join(f"seed {r['seed']}" for r in records)
    print(f"| arm | {seeds} | mean |")
    print("| --- |" + " ---: |" * (len(records) + 1))
    for letter, key, name in arms:
        values = [r["arms"][key] for r in records]
        print(
            f"| ({letter}) {name} | "
            + " | ".join(f"{v:.2%}" for v in values)
            + f" | {statistics.fmean(values):.2%} |"
        )
    values = [r["discriminator"] for r in records]
    print(
        "| the GAN's discriminator itself | "
        + " | ".join(f"{v:.2%}" for v in values)
        + f" | {statistics.fmean(values):.2%} |"
    )
    for key in ("self_training", "pool_gan", "pool_gan_synthetic", "pool_gan_self_training"):
        shares = [
            (r["arms"][key] - r["arms"]["classical"]) / (r["arms"]["pool_oracle"] - r["arms"]["classical"])
            for r in records
        ]
        print(
            f"| share of (t) - (b), {key} | "
            + " | ".join(f"{v:.0%}" for v in shares)
            + f" | {statistics.fmean(shares):.0%} |"
        )
    for letter, key in (("p", "pool_gan"), ("q", "pool_gan_synthetic"), ("r", "pool_gan_self_training")):
        gaps = [100 * (r["arms"][key] - r["arms"]["self_training"]) for r in records]
        print(
            f"| ({letter}) - (s), points | "
            + " | ".join(f"{v:+.1f}" for v in gaps)
            + f" | {statistics.fmean(gaps):+.1f} |"
        )


if __name__ == "__main__":
    main()
