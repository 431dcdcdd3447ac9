"""The pool arms: a classifier trained on a few labelled images per class plus a pool of unlabelled ones,
with the pool labelled three ways, listed once in POOL_ARMS: (s) by self-training, the competitor a user
has without a GAN; (p) by the semi-supervised GAN's classifier (model=ssgan_mlp), (q) the same with
synthetic variations of every image added, and (r) by self-training that starts from (p)'s classifier;
(t) with the pool's TRUE labels, an oracle: the ceiling that labelling the pool by hand would give. Each
adds its labelled pool to the labelled images and (b)'s tuned classical copies of them, and trains the
arms' classifier."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from handwriting_gan.augment.classical import classical_copies, tune, validation_split


@dataclass(frozen=True)
class PoolArm:
    letter: str
    key: str
    name: str

    @property
    def title(self) -> str:
        return f"({self.letter}) {self.name}"


#: Every pool arm, in the table's order, after the study's (a) and (b).
POOL_ARMS = (
    PoolArm("s", "self_training", "+ classical + pool labelled by self-training"),
    PoolArm("p", "pool_gan", "+ classical + pool labelled by the semi-supervised GAN"),
    PoolArm("q", "pool_gan_synthetic", "(p) + a synthetic variation of every image"),
    PoolArm("r", "pool_gan_self_training", "self-training started from (p)'s classifier"),
    PoolArm("t", "pool_oracle", "+ classical + pool with its true labels (oracle)"),
)
#: Self-training's confidence thresholds, from which its validation part chooses.
THRESHOLDS = (0.5, 0.9, 0.99)
#: Rounds of self-training: label the pool, retrain on the labelled images and the confident part.
ROUNDS = 2

#: fit(images, labels) -> a classifier trained on them with the arms' recipe;
#: copies(images, labels) -> (b)'s classical copies of labelled images (their images, their labels);
#: predict(classifier, images) -> (labels, confidence);
#: vary(images, labels) -> synthetic images made from them and their labels (e.g. the augmenter's).
Fit = Callable[[torch.Tensor, torch.Tensor], object]
Copies = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
Vary = Copies
Predict = Callable[[object, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


#: Copies per labelled image of (b)'s default setting, the first its tuning tries (the study's expansion).
EXPANSION = 10


def tuned_copies(
    labelled: tuple[torch.Tensor, torch.Tensor],
    num_classes: int,
    search,
    fit: Callable,
    score: Callable[[object, torch.Tensor, torch.Tensor], float],
    seed: int,
) -> tuple[object, list[dict], Copies]:
    """(b) for the pool arms: classical augmentation tuned on a validation part of the labelled images
    (augment/classical.py's `tune`, with `fit(images, labels, steps)`); returns the chosen setting, the
    trials, and `copies` that makes its copies of any labelled images."""
    best, trials = tune(*labelled, num_classes, search, EXPANSION, fit, score, seed)
    transform = best.transform()

    def copies(images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return classical_copies(images, labels, transform, best.copies, seed)

    return best, trials, copies


def one_variation(augmenter, seed: int) -> Vary:
    """(q)'s `vary`: one variation of every image by `augmenter` (handwriting_gan.augmenter.Augmenter, or
    anything with its `vary(images, labels, copies, seed)`), labelled as its source, drawn by `seed`."""

    def vary(images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        made, made_labels, _ = augmenter.vary(images, labels, 1, seed)
        return made, made_labels

    return vary


def with_copies(fit: Fit, copies: Copies, labelled: tuple[torch.Tensor, torch.Tensor]) -> Fit:
    """`fit` that adds (b)'s copies of the `labelled` images to whatever it is given: the copies of only
    these images, so that a validation part held out of them never reaches training through its copies."""
    extra_images, extra_labels = copies(*labelled)

    def fit_with(images: torch.Tensor, labels: torch.Tensor):
        return fit(torch.cat([images, extra_images]), torch.cat([labels, extra_labels]))

    return fit_with


def self_train(
    labelled: tuple[torch.Tensor, torch.Tensor],
    pool: torch.Tensor,
    fit: Fit,
    predict: Predict,
    threshold: float,
    rounds: int = ROUNDS,
    start: object | None = None,
) -> tuple[object, torch.Tensor, torch.Tensor]:
    """`rounds` rounds of self-training from `start`, or from the classifier fit on `labelled` alone:
    each labels the pool, keeps the images labelled with at least `threshold` confidence and refits on the
    labelled images and those. Returns (the last classifier, the pool's last labels, the mask of the kept
    ones)."""
    images, labels = labelled
    classifier = fit(images, labels) if start is None else start
    kept = torch.zeros(len(pool), dtype=torch.bool)
    predicted = torch.zeros(len(pool), dtype=torch.int64)
    for _ in range(rounds):
        predicted, confidence = predict(classifier, pool)
        kept = confidence >= threshold
        classifier = fit(torch.cat([images, pool[kept]]), torch.cat([labels, predicted[kept]]))
    return classifier, predicted, kept


def choose_threshold(
    labelled: tuple[torch.Tensor, torch.Tensor],
    pool: torch.Tensor,
    fit: Fit,
    copies: Copies,
    predict: Predict,
    score: Callable[[object, torch.Tensor, torch.Tensor], float],
    seed: int,
    fraction: float = 0.2,
    thresholds: Sequence[float] = THRESHOLDS,
) -> tuple[float, list[dict]]:
    """The self-training threshold that scores best on a validation part of the labelled images (one
    round, trained on the rest and their copies only), never on a test split; returns it and every
    trial. Ties go to the higher threshold."""
    images, labels = labelled
    held = validation_split(labels, fraction, seed)
    if not held.any():
        return thresholds[-1], []
    rest = (images[~held], labels[~held])
    fit_rest = with_copies(fit, copies, rest)
    trials = []
    for threshold in thresholds:
        classifier, _, kept = self_train(rest, pool, fit_rest, predict, threshold, rounds=1)
        trials.append(
            {
                "threshold": threshold,
                "validation_acc": score(classifier, images[held], labels[held]),
                "kept": float(kept.float().mean()),
            }
        )
    best = max(trials, key=lambda trial: (trial["validation_acc"], trial["threshold"]))
    return best["threshold"], trials


def pool_arms(
    labelled: tuple[torch.Tensor, torch.Tensor],
    pool: torch.Tensor,
    test: tuple[torch.Tensor, torch.Tensor],
    copies: Copies,
    gan_labels: torch.Tensor,
    fit: Fit,
    predict: Predict,
    score: Callable[[object, torch.Tensor, torch.Tensor], float],
    seed: int,
    truth: torch.Tensor | None = None,
    say: Callable[[str], None] = lambda message: None,
    vary: Vary | None = None,
) -> dict:
    """Every arm's accuracy on `test`: (a) the labelled images, (b) + their classical `copies`, (s) (b) +
    the pool labelled by self-training, the GAN's arms (gan_arms: (p), (r) and, given `vary`, (q)), and,
    given the pool's `truth`, (t) (b) + the pool with its true labels. Returns {"arms": {key: accuracy},
    "self_training": its threshold, trials and how much of the pool it kept (and how much of that was
    right, given `truth`)}."""
    images, labels = labelled
    fit_b = with_copies(fit, copies, labelled)
    arms = {"real": score(fit(images, labels), *test), "classical": score(fit_b(images, labels), *test)}
    say(f"(a) {arms['real']:.1%}, (b) {arms['classical']:.1%}")
    threshold, trials = choose_threshold(labelled, pool, fit, copies, predict, score, seed)
    classifier, predicted, kept = self_train(labelled, pool, fit_b, predict, threshold)
    arms["self_training"] = score(classifier, *test)
    info = {"threshold": threshold, "trials": trials, "kept": float(kept.float().mean())}
    if truth is not None and kept.any():
        info["kept_right"] = float((predicted[kept] == truth[kept]).float().mean())
    say(f"(s) {arms['self_training']:.1%} (threshold {threshold})")
    arms.update(gan_arms(labelled, pool, test, gan_labels, fit_b, predict, score, threshold, vary, say))
    if truth is not None:
        arms["pool_oracle"] = score(fit_b(torch.cat([images, pool]), torch.cat([labels, truth])), *test)
        say(f"(t) {arms['pool_oracle']:.1%}")
    return {"arms": arms, "self_training": info}


def gan_arms(
    labelled: tuple[torch.Tensor, torch.Tensor],
    pool: torch.Tensor,
    test: tuple[torch.Tensor, torch.Tensor],
    gan_labels: torch.Tensor,
    fit_b: Fit,
    predict: Predict,
    score: Callable[[object, torch.Tensor, torch.Tensor], float],
    threshold: float,
    vary: Vary | None = None,
    say: Callable[[str], None] = lambda message: None,
) -> dict[str, float]:
    """The GAN's arms' accuracies on `test`, each through `fit_b` (which adds (b)'s copies): (p) the
    labelled images and the pool with `gan_labels`; (r) self-training started from (p)'s classifier
    instead of (b)'s, with self-training's `threshold`; given `vary`, (q) (p) + what `vary` makes of every
    image of (p)'s set, labelled as (p) labels its source."""
    images = torch.cat([labelled[0], pool])
    labels = torch.cat([labelled[1], gan_labels])
    classifier = fit_b(images, labels)
    arms = {"pool_gan": score(classifier, *test)}
    say(f"(p) {arms['pool_gan']:.1%}")
    refined, _, kept = self_train(labelled, pool, fit_b, predict, threshold, start=classifier)
    arms["pool_gan_self_training"] = score(refined, *test)
    say(f"(r) {arms['pool_gan_self_training']:.1%} (kept {kept.float().mean():.0%} of the pool)")
    if vary is not None:
        made_images, made_labels = vary(images, labels)
        arms["pool_gan_synthetic"] = score(
            fit_b(torch.cat([images, made_images]), torch.cat([labels, made_labels])), *test
        )
        say(f"(q) {arms['pool_gan_synthetic']:.1%}")
    return arms
