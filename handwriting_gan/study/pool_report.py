"""The pool study's table (python -m handwriting_gan.study.pool): each arm's test accuracy per seed and mean ±
std, the GAN's discriminator as a classifier, and the comparisons paired by seed: how much of the oracle's
gain over (b) each way of labelling the pool gets, and each GAN arm against self-training."""

from __future__ import annotations

from collections.abc import Sequence

from handwriting_gan.augment.arms import mean_std
from handwriting_gan.augment.pool import POOL_ARMS, PoolArm

#: (a) and (b), the arms before the pool's, under their keys in each seed's "arms".
BASE_ARMS = (PoolArm("a", "real", "labelled only"), PoolArm("b", "classical", "+ tuned classical aug."))
#: The arms the comparisons are made against: (b), self-training (s) and the oracle (t).
BASELINE, SELF_TRAINING, ORACLE = "classical", "self_training", "pool_oracle"
DISCRIMINATOR_TITLE = "the GAN's discriminator itself"


def pool_table(plan, records: Sequence[dict]) -> str:
    """The table of `records` (each seed's, in order) as markdown, after a line that says what it holds
    (from `plan`, the command's PoolStudy)."""
    first = records[0]
    oracle = _letter(ORACLE)
    variations = f"(q) varies with augmenter={plan.augmenter}" if plan.augmenter else "(q) left out"
    what = (
        f"Test accuracy (%) on the test split of {plan.describe()} ({first['test']} images): "
        f"{plan.labels_per_class} labelled images per class ({first['labelled']} in all) and a pool of "
        f"{first['pool']} unlabelled ones. Semi-supervised GAN (model=ssgan_mlp) of {plan.gan_batches} "
        f"batches of {plan.gan_batch_size}, arm classifiers of {plan.arm_steps} steps, {variations}. "
        f"Shares: (arm − (b)) / (({oracle}) − (b)), the part of the oracle's gain over (b) an arm gets; "
        f"paired by seed."
    )
    return "\n".join([what, "", *pool_rows(records)])


def pool_rows(records: Sequence[dict]) -> list[str]:
    """The table's markdown lines: a row per arm and for the discriminator, then the shares of the
    oracle's gain and each GAN arm against self-training, a column per seed and mean ± std."""
    header = ["arm", *[f"seed {record['seed']}" for record in records], "mean ± std"]
    lines = ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    for arm in (*BASE_ARMS, *POOL_ARMS):
        lines.append(_row(arm.title, [record["arms"].get(arm.key) for record in records], _points))
    lines.append(_row(DISCRIMINATOR_TITLE, [record["discriminator"] for record in records], _points))
    oracle = _letter(ORACLE)
    for arm in POOL_ARMS:
        if arm.key != ORACLE:
            shares = [_share(record["arms"], arm.key) for record in records]
            lines.append(_row(f"({arm.letter}): share of ({oracle}) − (b)", shares, _percent))
    own = _letter(SELF_TRAINING)
    for arm in POOL_ARMS:
        if arm.key not in (ORACLE, SELF_TRAINING):
            gaps = [_difference(record["arms"], arm.key, SELF_TRAINING) for record in records]
            lines.append(_row(f"({arm.letter}) − ({own}), points", gaps, _signed))
    return lines


def _letter(key: str) -> str:
    return next(arm.letter for arm in POOL_ARMS if arm.key == key)


def _share(arms: dict, key: str) -> float | None:
    """(arm − (b)) / ((t) − (b)); None where an arm is missing or the oracle gains nothing over (b)."""
    if key not in arms or ORACLE not in arms or arms[ORACLE] == arms[BASELINE]:
        return None
    return (arms[key] - arms[BASELINE]) / (arms[ORACLE] - arms[BASELINE])


def _difference(arms: dict, key: str, other: str) -> float | None:
    if key not in arms or other not in arms:
        return None
    return 100 * (arms[key] - arms[other])


def _points(value: float) -> str:
    return f"{100 * value:.1f}"


def _percent(value: float) -> str:
    return f"{100 * value:.0f}%"


def _signed(value: float) -> str:
    return f"{value:+.1f}"


def _row(title: str, values: Sequence[float | None], cell) -> str:
    """Every seed's value, then mean ± std of those there are (a dash for a missing one)."""
    mean, std = mean_std(values)
    if mean is None:
        summary = "-"
    elif std is None:
        summary = cell(mean)
    else:
        summary = f"{cell(mean)} ± {cell(std).lstrip('+')}"
    cells = ["-" if value is None else cell(value) for value in values]
    return "| " + " | ".join([title, *cells, summary]) + " |"
