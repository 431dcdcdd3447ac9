"""The study's table: each arm's test accuracy and each generator's quality, mean and std over the seeds
of each size, from the results store; written as table.md, table.json, table.csv and accuracy.png."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from handwriting_gan.augment.arms import Arm, mean_std
from handwriting_gan.files import atomic_path
from handwriting_gan.study.settings import Study
from handwriting_gan.study.store import Results

#: The files write_outputs makes in the study folder.
OUTPUT_FILES = ("table.md", "table.json", "table.csv", "accuracy.png")


def summarize(plan: Study, results: Results) -> list[dict]:
    """One row per size: mean and std over the seeds of each arm's test accuracy, FD / floor and label
    agreement, and the fraction of synthetic images the filtered arms kept."""
    rows = []
    for size in plan.per_class:
        runs = [results.run(size, seed) for seed in range(plan.seeds)]
        row: dict[str, Any] = {
            "per_class": size,
            "seeds": sum(1 for r in runs if all(arm.key in r["arms"] for arm in plan.arms)),
        }
        for arm in plan.arms:
            row[f"{arm.key}_mean"], row[f"{arm.key}_std"] = mean_std(
                [r["arms"][arm.key]["test_acc"] for r in runs if arm.key in r["arms"]]
            )
        baseline = "classical"
        if any(arm.key == baseline for arm in plan.arms):
            for arm in plan.arms:
                if arm.key == baseline or arm.key == "real":
                    continue
                # Paired by seed: the same real images, (b)'s tuned copies and test split in both.
                gains = [
                    r["arms"][arm.key]["test_acc"] - r["arms"][baseline]["test_acc"]
                    for r in runs
                    if arm.key in r["arms"] and baseline in r["arms"]
                ]
                row[f"{arm.key}_gain_mean"], row[f"{arm.key}_gain_std"] = mean_std(gains)
                row[f"{arm.key}_gain_seeds"] = gains
        quality = [r["quality"] for r in runs if r["quality"]]
        for key in ("fd_ratio", "label_agreement"):
            row[f"{key}_mean"], row[f"{key}_std"] = mean_std([q[key] for q in quality])
        row["filtered_kept"] = mean_std([kept_fraction(plan, r) for r in runs])[0]
        if any(arm.checked for arm in plan.arms):  # a new key only where a new arm is: old files keep theirs
            row["checked_kept"] = mean_std([kept_fraction(plan, r, checked=True) for r in runs])[0]
        rows.append(row)
    return rows


def kept_fraction(plan: Study, run: dict, checked: bool = False) -> float | None:
    """The fraction of the run's synthetic images that passed filter_confidence (the same for every
    filtered arm), or with `checked` of the augmenter's variations that (b)'s classifier read as their
    source's class; None before such an arm is stored."""
    stored = [
        run["arms"][arm.key]
        for arm in plan.arms
        if (arm.checked if checked else arm.filtered) and arm.key in run["arms"]
    ]
    return stored[0]["kept_fraction"] if stored else None


def _cell(mean: float | None, std: float | None, scale: float = 1.0, digits: int = 1, sign: str = "-") -> str:
    """`mean ± std`, scaled; sign "+" writes the sign of a positive mean too (a difference)."""
    if mean is None:
        return "-"
    text = f"{scale * mean:{sign}.{digits}f}"
    return text if std is None else f"{text} ± {scale * std:.{digits}f}"


def _letters(arms: Sequence[Arm]) -> str:
    """`(b)-(d), (f)`: the arms' letters, consecutive ones as a range."""
    spans: list[list[str]] = []
    for letter in sorted(arm.letter for arm in arms):
        if spans and ord(letter) == ord(spans[-1][-1]) + 1:
            spans[-1].append(letter)
        else:
            spans.append([letter])
    return ", ".join(f"({s[0]})" if len(s) == 1 else f"({s[0]})-({s[-1]})" for s in spans)


def markdown_table(plan: Study, rows: list[dict]) -> str:
    """The table as markdown, one column per arm, with a line that says what the numbers are."""
    quality = [f"FD / floor ({plan.quality_samples} samples)", "label agreement"] if plan.needs_gan else []
    titles = [
        "per_class",
        "seeds",
        *[f"{arm.title} (≥ {plan.filter_confidence:g})" if arm.filtered else arm.title for arm in plan.arms],
        *quality,
    ]
    # The fraction kept goes once per row, into the first filtered arm's cell.
    kept_in = next((arm.key for arm in plan.arms if arm.filtered), None)
    lines = ["| " + " | ".join(titles) + " |", "| " + " | ".join(["---:"] * len(titles)) + " |"]
    for row in rows:
        arms = []
        for arm in plan.arms:
            cell = _cell(row[f"{arm.key}_mean"], row[f"{arm.key}_std"], 100)
            if arm.key == kept_in and row["filtered_kept"] is not None:
                cell += f" (kept {100 * row['filtered_kept']:.0f}%)"
            if arm.checked and row.get("checked_kept") is not None:
                cell += f" (kept {100 * row['checked_kept']:.0f}%)"
            arms.append(cell)
        cells = [str(row["per_class"]), str(row["seeds"]), *arms]
        if plan.needs_gan:
            cells += [
                _cell(row["fd_ratio_mean"], row["fd_ratio_std"]),
                _cell(row["label_agreement_mean"], row["label_agreement_std"], digits=3),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    groups = plan.groups if plan.needs_gan else {"dataset": plan.dataset}
    chosen = " ".join(f"{group}={choice}" for group, choice in groups.items() if choice)
    if plan.augmenter is not None and any(arm.needs_augmenter for arm in plan.arms):
        chosen += f" augmenter={plan.augmenter}"
    if plan.needs_gan:
        length = f", {plan.gan_steps} GAN steps" if plan.gan_steps else ", GANs of trainer.max_epochs epochs"
    else:
        length = ""
    single = [arm for arm in plan.arms if len(arm.adds) == 1]
    several = [arm for arm in plan.arms if len(arm.adds) > 1]
    fixed = [arm for arm in single if arm.key != "classical"]
    parts = [f"{plan.expansion} extra images per real one in {_letters(fixed)}"] if fixed else []
    if any(arm.key == "classical" for arm in plan.arms):
        copies = (
            "tuned classical augmentation" if plan.tunes_classical else f"{plan.expansion} classical copies"
        )
        parts.append(f"{copies} in (b)")
    if several:
        parts.append(f"{_letters(several)} add{'s' if len(several) == 1 else ''} both")
    extra = ", ".join(parts)
    what = (
        f"Test accuracy (%) on the full real test split, mean ± std over seeds. {chosen}{length}, "
        f"{extra}, classifiers trained {plan.arm_steps} steps each."
    )
    return "\n".join([what, "", *lines, *gain_table(plan, rows)])


def gain_table(plan: Study, rows: list[dict]) -> list[str]:
    """Each arm's paired difference from (b) in points: mean ± std, then every seed's value."""
    arms = [arm for arm in plan.arms if f"{arm.key}_gain_mean" in rows[0]] if rows else []
    if not arms:
        return []
    baseline = next(arm for arm in plan.arms if arm.key == "classical")
    lines = [
        "",
        f"Paired differences from {baseline.title} (points; mean ± std, then each seed's value):",
        "",
        "| per_class | " + " | ".join(f"{arm.title} − (b)" for arm in arms) + " |",
        "| ---: | " + " | ".join(["---:"] * len(arms)) + " |",
    ]
    for row in rows:
        cells = []
        for arm in arms:
            seeds = ", ".join(f"{100 * gain:+.1f}" for gain in row[f"{arm.key}_gain_seeds"])
            gain = _cell(row[f"{arm.key}_gain_mean"], row[f"{arm.key}_gain_std"], 100, sign="+")
            cells.append(f"{gain} ({seeds})")
        lines.append(f"| {row['per_class']} | " + " | ".join(cells) + " |")
    return lines


def write_outputs(plan: Study, rows: list[dict], table: str) -> dict[str, Path]:
    """table.md, table.json, table.csv and accuracy.png in the study folder, each written atomically."""
    paths = {name: plan.out / name for name in OUTPUT_FILES}
    with atomic_path(paths["table.md"]) as tmp:
        tmp.write_text(table + "\n")
    record = {
        "settings": {**plan.identity(), "per_class": list(plan.per_class), "seeds": plan.seeds},
        "arms": {arm.key: arm.title for arm in plan.arms},
        "rows": rows,
    }
    with atomic_path(paths["table.json"]) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    with atomic_path(paths["table.csv"]) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: _csv_value(v) for k, v in row.items()} for row in rows)
    with atomic_path(paths["accuracy.png"]) as tmp:
        plot(plan, rows).savefig(tmp, format="png")
    return paths


def _csv_value(value):
    if value is None:
        return ""
    return " ".join(f"{v:.6g}" for v in value) if isinstance(value, list) else value


def plot(plan: Study, rows: list[dict]):
    """Test accuracy against real images per class, one line per arm, with std error bars."""
    from matplotlib.figure import Figure  # no pyplot: nothing global, no display needed

    figure = Figure(figsize=(9, 4), dpi=100, layout="tight")
    axes = figure.subplots()
    sizes = [row["per_class"] for row in rows]
    for arm in plan.arms:
        means = [row[f"{arm.key}_mean"] for row in rows]
        stds = [row[f"{arm.key}_std"] or 0.0 for row in rows]
        shown = [i for i, mean in enumerate(means) if mean is not None]
        axes.errorbar(
            [sizes[i] for i in shown],
            [means[i] for i in shown],
            yerr=[stds[i] for i in shown],
            label=arm.title,
            marker="o",
            capsize=3,
        )
    if len(sizes) > 1 and sizes[-1] / sizes[0] >= 4:
        axes.set_xscale("log")
    axes.set_xticks(sizes, [str(s) for s in sizes])
    axes.minorticks_off()
    axes.set_xlabel("real training images per class")
    axes.set_ylabel("test accuracy (real test split)")
    seeds = f"{plan.seeds} seed{'s' if plan.seeds > 1 else ''}"
    what = f"{plan.dataset}, {plan.model}" if plan.needs_gan else plan.dataset
    axes.set_title(f"{what}: mean ± std over {seeds}")
    axes.grid(alpha=0.3)
    # Beside the axes, not on them: inside, it hides points wherever it is placed.
    axes.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize="small")
    return figure
