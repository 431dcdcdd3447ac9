"""The measurement: does the expansion help a classifier on the user's own images? Per seed, a held-out
part of each class tests the classifier trained on the rest in the study's arms (a) real, (b) + tuned
classical augmentation and (g) + (b)'s copies + the augmenter's variations, each with the study's own
pieces (augment/classical.py's copies and search, metrics/classifier.py's fit_for_steps). With a pool,
the arms are (a), (b), (s) the pool labelled by self-training, (p) by the semi-supervised GAN and (q) (p)
with an augmenter variation of every image, trained per seed without the held-out images
(augment/pool.py), and the GAN's discriminator itself."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from handwriting_gan.augment.arms import BY_KEY
from handwriting_gan.augment.classical import Classical, classical_copies, tune
from handwriting_gan.expand.settings import MIN_HELD_OUT, MIN_TRAIN, Plan
from handwriting_gan.metrics.classifier import accuracy, fit_for_steps, predict

if TYPE_CHECKING:
    from handwriting_gan.augmenter import Augmenter

#: The arms, in the report's order; (g) - (b) is the gain.
ARMS = (BY_KEY["real"], BY_KEY["classical"], BY_KEY["classical_augmenter"])
BASELINE, EXPANDED = "classical", "classical_augmenter"
#: Mixed into the seeds of the held-out draw and of the variations, so each is its own stream.
HELD_OUT_STREAM, VARIATION_STREAM, POOL_VARIATION_STREAM = 0x4E1D, 0x7A21, 0x9051


def stream_seed(*parts: int) -> int:
    """A seed of its own stream for `parts` (e.g. seed, label, stream), not their sum."""
    return int(np.random.SeedSequence([p % 2**63 for p in parts]).generate_state(1, np.uint64)[0] % 2**63)


def held_out(labels: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """True for the images of each class that seed `seed` holds out: round(fraction x its size), at least
    MIN_HELD_OUT, leaving at least MIN_TRAIN (the caller has checked every class has enough)."""
    held = torch.zeros(len(labels), dtype=torch.bool)
    for label in torch.unique(labels).tolist():
        members = torch.nonzero(labels == label).flatten()
        count = min(len(members) - MIN_TRAIN, max(MIN_HELD_OUT, math.floor(fraction * len(members) + 0.5)))
        order = np.random.default_rng([seed, label, HELD_OUT_STREAM]).permutation(len(members))
        held[members[torch.from_numpy(order[:count])]] = True
    return held


def steps_of(plan: Plan) -> int:
    """Steps of one seed's progress: each tuning trial, then each arm."""
    return plan.search.trials + len(ARMS)


def measure_seed(
    plan: Plan,
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    augmenter: Augmenter,
    variations: int,
    record: dict[str, Any],
    save: Callable[[dict[str, Any]], None],
    advance: Callable[[str], None] = lambda message: None,
) -> dict[str, Any]:
    """Seed record["seed"] of the measurement: tune (b) on the training part, then train and test each arm
    not yet in `record`; `save(record)` after each step, `advance(message)` counts it. (g) adds
    `variations` augmenter images per real training image, as many as the expanded dataset has."""
    seed = int(record["seed"])
    test = held_out(labels, plan.held_out_fraction, seed)
    train_images, train_labels = images[~test], labels[~test]
    record.update(held_out=int(test.sum()), train=int((~test).sum()), variations=variations)

    def fit(fit_images, fit_labels, steps):
        return fit_for_steps(fit_images, fit_labels, num_classes, plan.classifier, steps, seed, plan.device)[
            0
        ]

    if "classical_choice" not in record:
        best, trials = tune(
            train_images,
            train_labels,
            num_classes,
            plan.search,
            variations,
            fit,
            accuracy,
            seed,
            say=advance,
        )
        record["classical_choice"] = {"setting": best.as_dict(), "trials": trials}
        save(record)
        for _ in range(plan.search.trials - len(trials)):  # no validation part: the default stood
            advance("classical augmentation: the untuned default")
    classical = Classical(**record["classical_choice"]["setting"])

    @functools.cache
    def extra(kind: str) -> tuple[torch.Tensor, torch.Tensor]:
        if kind == "classical":
            return classical_copies(train_images, train_labels, classical.transform(), classical.copies, seed)
        made, made_labels, _ = augmenter.vary(
            train_images, train_labels, variations, stream_seed(seed, VARIATION_STREAM)
        )
        return made, made_labels

    for arm in ARMS:
        if arm.key in record["arms"]:
            continue
        parts = [(train_images, train_labels), *(extra(kind) for kind in arm.adds)]
        fit_images = torch.cat([part[0] for part in parts])
        classifier, epochs = fit_for_steps(
            fit_images,
            torch.cat([part[1] for part in parts]),
            num_classes,
            plan.classifier,
            plan.steps,
            seed,
            plan.device,
        )
        score = accuracy(classifier, images[test], labels[test])
        record["arms"][arm.key] = {"test_acc": score, "images": len(fit_images), "epochs": epochs}
        save(record)
        advance(f"{arm.title}: {100 * score:.1f}% on the held-out images")
    return record


def measure_pool_seed(plan: Plan, seed: int, folder, record: dict[str, Any]) -> dict[str, Any]:
    """Seed `seed` of the pool's measurement: the folder dataset holds `held_out_fraction` of each class
    out (drawn by the seed); the GAN (in `folder`/ssgan_seed_<seed>) and every arm train on the rest and
    the pool, and are tested on the held-out images. (q)'s variations are the plan's augmenter's, one of
    each image."""
    from handwriting_gan.augment.pool import one_variation, pool_arms, tuned_copies
    from handwriting_gan.augmenter import Augmenter
    from handwriting_gan.expand.gan import train_gan
    from handwriting_gan.models.classifier_file import load_classifier
    from handwriting_gan.shell import say

    datamodule = plan.datamodule(plan.held_out_fraction, seed)
    train_images, train_labels = datamodule.split(train=True)
    test = datamodule.split(train=False)
    pool = datamodule.label_split().unlabelled
    num_classes = datamodule.num_classes

    def fit(fit_images, fit_labels, steps=plan.steps):
        return fit_for_steps(fit_images, fit_labels, num_classes, plan.classifier, steps, seed, plan.device)[
            0
        ]

    best, trials, copies = tuned_copies(
        (train_images, train_labels), num_classes, plan.search, fit, accuracy, seed
    )

    gan = train_gan(
        plan,
        folder / f"ssgan_seed_{seed}",
        len(train_labels),
        len(pool),
        seed=seed,
        held_out=plan.held_out_fraction,
    )
    discriminator = load_classifier(gan)
    gan_labels = discriminator.label(pool)[0]
    augmenter = Augmenter.load(plan.augmenter, plan.device)
    augmenter.batch_size = plan.batch_size

    vary = one_variation(augmenter, stream_seed(seed, POOL_VARIATION_STREAM))

    measured = pool_arms(
        (train_images, train_labels),
        pool,
        test,
        copies,
        gan_labels,
        fit,
        predict,
        accuracy,
        seed,
        say=lambda message: say(f"  {message}"),
        vary=vary,
    )
    record.update(
        measured,
        held_out=len(test[1]),
        train=len(train_labels),
        classical_choice={"setting": best.as_dict(), "trials": trials},
        discriminator=float((discriminator.label(test[0])[0] == test[1]).float().mean()),
    )
    say(f"  the GAN's discriminator: {record['discriminator']:.1%} on the held-out images")
    return record
