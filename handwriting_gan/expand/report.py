"""The measurement's report: each arm's held-out accuracy per seed and mean ± std, the paired gain of (g)
over (b) per seed, and one plain sentence saying whether the expansion helped; as report.md and
report.json."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from handwriting_gan.augment.arms import mean_std
from handwriting_gan.expand.measure import ARMS, BASELINE, EXPANDED

REPORT_MD, REPORT_JSON = "report.md", "report.json"
#: How the sentence names the two arms it compares.
EXPANDED_NAME = "(g) classical augmentation + the augmenter's images"
BASELINE_NAME = "(b) tuned classical augmentation alone"


def summarize(records: Sequence[dict[str, Any]], path: Path, classes: int) -> dict[str, Any]:
    """report.json's content from each seed's stored record (measure.measure_seed)."""
    arms = {}
    for arm in ARMS:
        values = [record["arms"][arm.key]["test_acc"] for record in records]
        mean, std = mean_std(values)
        arms[arm.key] = {"title": arm.title, "test_acc": values, "mean": mean, "std": std}
    gains = [
        100 * (record["arms"][EXPANDED]["test_acc"] - record["arms"][BASELINE]["test_acc"])
        for record in records
    ]
    mean, std = mean_std(gains)
    return {
        "folder": str(path.resolve()),
        "classes": classes,
        "seeds": [int(record["seed"]) for record in records],
        "held_out_images": [record["held_out"] for record in records],
        "training_images": [record["train"] for record in records],
        "variations_per_image": records[0]["variations"],
        "classical_choice": [record["classical_choice"]["setting"] for record in records],
        "arms": arms,
        "gain": {
            "what": "accuracy of (g) minus that of (b), in points, per seed",
            "per_seed": gains,
            "mean": mean,
            "std": std,
            "seeds_better": sum(1 for gain in gains if gain > 0),
        },
        "sentence": verdict(gains),
    }


def verdict(gains: Sequence[float]) -> str:
    """One plain sentence on the paired gains (accuracy points, one per seed): helped when (g) beat (b)
    on average and in most seeds, did not help when it did neither, unclear otherwise."""
    mean, _ = mean_std(gains)
    better, seeds = sum(1 for gain in gains if gain > 0), len(gains)
    most = better > seeds / 2
    if mean > 0 and most:
        return (
            f"The expansion helped on this data: {EXPANDED_NAME} beat {BASELINE_NAME} by {mean:+.1f} "
            f"points on average, in {better} of {seeds} seeds."
        )
    if mean <= 0 and not most:
        return (
            f"The expansion did not help on this data: {EXPANDED_NAME} scored {mean:+.1f} points against "
            f"{BASELINE_NAME} on average, and beat it in {better} of {seeds} seeds."
        )
    return (
        f"It is unclear whether the expansion helped on this data: {EXPANDED_NAME} scored {mean:+.1f} points "
        f"against {BASELINE_NAME} on average, but beat it in {better} of {seeds} seeds; more seeds "
        f"(seeds=) or more images per class would tell."
    )


def markdown(summary: dict[str, Any]) -> str:
    """report.md: the table and the sentence."""
    seeds = summary["seeds"]
    held, trained = summary["held_out_images"], summary["training_images"]
    lines = [
        f"# Does the expansion help? {summary['folder']}",
        "",
        f"{summary['classes']} classes. Each seed holds out part of every class ({held[0]} images for seed "
        f"{seeds[0]}) and trains the classifier on the rest ({trained[0]} images) three ways; (g) adds "
        f"{summary['variations_per_image']} of the augmenter's images per real one to (b)'s copies. "
        f"Accuracy on the held-out images:",
        "",
    ]
    lines += _arm_rows(summary)
    gain = summary["gain"]
    cells = [f"{value:+.1f}" for value in gain["per_seed"]]
    lines.append("| gain (g) − (b), points | " + " | ".join(cells) + f" | {_mean_std(gain, 1, '+')} |")
    return "\n".join([*lines, "", summary["sentence"], ""])


def _arm_rows(summary: dict[str, Any]) -> list[str]:
    """The table's header and a row per arm: its accuracy per seed, then mean ± std."""
    seeds = summary["seeds"]
    rows = [
        "| arm | " + " | ".join(f"seed {seed}" for seed in seeds) + " | mean ± std |",
        "| --- |" + " ---: |" * (len(seeds) + 1),
    ]
    for values in summary["arms"].values():
        cells = [f"{100 * value:.1f}%" for value in values["test_acc"]]
        rows.append(f"| {values['title']} | " + " | ".join(cells) + f" | {_mean_std(values, 100)} |")
    return rows


def _mean_std(values: dict[str, Any], scale: float, sign: str = "") -> str:
    mean, std = values["mean"], values["std"]
    text = f"{scale * mean:{sign}.1f}" + ("%" if scale == 100 else "")
    return text if std is None else f"{text} ± {scale * std:.1f}"


#: The pool's measurement, in the report's order: each arm's key and title, then the discriminator.
POOL_ARMS = (
    ("real", "(a) labelled only"),
    ("classical", "(b) + tuned classical aug."),
    ("self_training", "(s) (b) + the pool labelled by self-training"),
    ("pool_gan", "(p) (b) + the pool labelled by the semi-supervised GAN"),
    ("pool_gan_synthetic", "(q) (p) + an augmenter variation of every image"),
    ("pool_gan_self_training", "(r) self-training started from (p)'s classifier"),
)
#: The arms of the GAN, of which the best counts against self-training.
GAN_ARMS = ("pool_gan", "pool_gan_synthetic", "pool_gan_self_training")


#: The pool report's differences, in points: name, the arm, the arm it is measured against, the row's title.
POOL_GAINS = (
    ("over_self_training", "pool_gan", "self_training", "(p) − (s)"),
    ("over_classical", "pool_gan", "classical", "(p) − (b)"),
    ("synthetic_over_self_training", "pool_gan_synthetic", "self_training", "(q) − (s)"),
    ("synthetic_over_pool", "pool_gan_synthetic", "pool_gan", "(q) − (p): what the variations add"),
    ("refined_over_self_training", "pool_gan_self_training", "self_training", "(r) − (s)"),
)


def pool_summary(records: Sequence[dict[str, Any]], path: Path, classes: int) -> dict[str, Any]:
    """report.json's content for the pool's measurement (measure.measure_pool_seed's records; an arm
    missing from a seed's record, as (q) in one stored before it existed, is left out)."""
    measured = [(key, title) for key, title in POOL_ARMS if all(key in r["arms"] for r in records)]
    arms = {}
    for key, title in measured:
        values = [record["arms"][key] for record in records]
        mean, std = mean_std(values)
        arms[key] = {"title": title, "test_acc": values, "mean": mean, "std": std}
    values = [record["discriminator"] for record in records]
    mean, std = mean_std(values)
    arms["discriminator"] = {
        "title": "the GAN's discriminator itself",
        "test_acc": values,
        "mean": mean,
        "std": std,
    }
    gains = {}
    for name, arm, other, title in POOL_GAINS:
        if arm in arms:
            per_seed = [100 * (r["arms"][arm] - r["arms"][other]) for r in records]
            mean, std = mean_std(per_seed)
            gains[name] = {"title": title, "per_seed": per_seed, "mean": mean, "std": std}
    return {
        "folder": str(path.resolve()),
        "classes": classes,
        "seeds": [int(record["seed"]) for record in records],
        "held_out_images": [record["held_out"] for record in records],
        "training_images": [record["train"] for record in records],
        "self_training": [record["self_training"] for record in records],
        "arms": arms,
        "gain": gains,
        "sentence": pool_verdict(records),
    }


def pool_verdict(records: Sequence[dict[str, Any]]) -> str:
    """One sentence: which arm scored best on average, the best of the GAN's arms against self-training
    (s) and (b), in points, with how many seeds it beat (s), and what the variations of (q) added."""
    means = {
        key: mean_std([r["arms"][key] for r in records])[0]
        for key, _ in POOL_ARMS
        if all(key in r["arms"] for r in records)
    }
    titles = dict(POOL_ARMS)
    best = max(means, key=means.get)
    gan = max((key for key in GAN_ARMS if key in means), key=means.get)
    letter = titles[gan][:3]
    over_s = 100 * (means[gan] - means["self_training"])
    over_b = 100 * (means[gan] - means["classical"])
    wins = sum(1 for r in records if r["arms"][gan] > r["arms"]["self_training"])
    sentence = (
        f"Best on this data: {titles[best]} ({100 * means[best]:.1f}% on the held-out images). The GAN's "
        f"best arm, {letter}, scored {over_s:+.1f} points against self-training and {over_b:+.1f} against "
        f"(b) alone, and beat self-training in {wins} of {len(records)} seeds."
    )
    if "pool_gan_synthetic" in means:
        added = 100 * (means["pool_gan_synthetic"] - means["pool_gan"])
        sentence += f" The synthetic variations of (q) changed (p) by {added:+.1f} points."
    return sentence


def pool_markdown(summary: dict[str, Any]) -> str:
    """report.md of the pool's measurement: the table and the sentence."""
    seeds = summary["seeds"]
    lines = [
        f"# Labelling the pool: {summary['folder']}",
        "",
        f"{summary['classes']} classes. Each seed holds out part of every class "
        f"({summary['held_out_images'][0]} images for seed {seeds[0]}); the GAN and every arm learn from "
        f"the rest ({summary['training_images'][0]} images) and the pool. Accuracy on the held-out images:",
        "",
    ]
    lines += _arm_rows(summary)
    for gain in summary["gain"].values():
        cells = [f"{value:+.1f}" for value in gain["per_seed"]]
        lines.append(f"| {gain['title']}, points | " + " | ".join(cells) + f" | {_mean_std(gain, 1, '+')} |")
    return "\n".join([*lines, "", summary["sentence"], ""])
