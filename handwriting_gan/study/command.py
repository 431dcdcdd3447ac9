"""The study command: check the plan, then run or resume the steps of each size and seed (when an arm
needs one, the GAN run: train, measure, export; then the tuning of (b) and the arms) in order, and print
and write the table."""

from __future__ import annotations

import logging
import sys

from omegaconf import DictConfig

from handwriting_gan.errors import ConfigError
from handwriting_gan.shell import command, say, set_threads
from handwriting_gan.study.report import markdown_table, summarize, write_outputs
from handwriting_gan.study.settings import Study, check_study
from handwriting_gan.study.steps import Progress, check_runs, export, measure, train_gan
from handwriting_gan.study.store import RESULTS_FILE, Results
from handwriting_gan.study.training import instantiate_classical, train_arms

#: Steps of each GAN run besides its arms: the GAN, its metrics and its export.
RUN_STEPS = 3


def study(cfg: DictConfig) -> dict:
    """The command: check `cfg` (conf/study.yaml), run or resume every step, print and write the table.
    Returns {"rows", "table", "files"}."""
    plan = check_study(cfg)
    if plan.out.exists() and not plan.out.is_dir():
        raise ConfigError(f"out={plan.out} is a file, not a folder; choose another out=.")
    set_threads(cfg.threads)
    results = Results(plan.out / RESULTS_FILE, plan.identity())
    todo = [(size, seed) for size, seed in plan.runs if not finished(plan, results.run(size, seed))]
    if todo:
        check_runs(plan)
        instantiate_classical(plan)
    steps = (RUN_STEPS if plan.needs_gan else 0) + int(plan.tunes_classical) + len(plan.arms)
    what = "GAN runs" if plan.needs_gan else "sizes and seeds"
    say(
        f"Study folder: {plan.out} ({len(plan.runs)} {what} of {steps} steps, "
        f"{len(plan.runs) - len(todo)} already finished)"
    )
    progress = Progress(len(plan.runs) * steps)
    for size, seed in plan.runs:
        if (size, seed) in todo:
            run_steps(plan, size, seed, results, progress)
        else:
            progress.skip(steps, f"per_class={size} seed={seed}: finished (stored in results.json)")
    rows = summarize(plan, results)
    table = markdown_table(plan, rows)
    files = write_outputs(plan, rows, table)
    print(table, flush=True)
    say(f"Finished. Table, CSV, JSON and plot in {plan.out}")
    return {"rows": rows, "table": table, "files": {name: str(path) for name, path in files.items()}}


def finished(plan: Study, stored: dict) -> bool:
    """The GAN run's metrics (when the plan trains GANs) and every arm are stored."""
    quality = stored["quality"] is not None or not plan.needs_gan
    return quality and all(arm.key in stored["arms"] for arm in plan.arms)


def run_steps(plan: Study, per_class: int, seed: int, results: Results, progress: Progress) -> None:
    """The steps of (per_class, seed) that are not finished: when an arm needs one, train (or continue)
    its GAN, measure it, export its synthetic set; then train its arms; each result stored as soon as it
    exists."""
    if not plan.needs_gan:
        train_arms(plan, per_class, seed, None, results, progress)
        return
    run = train_gan(plan, per_class, seed, progress)
    label = f"per_class={per_class} seed={seed}"
    stored = results.run(per_class, seed)
    if stored["quality"] is None:
        progress.step(f"{label}: measuring FD and label agreement ({plan.quality_samples} samples)")
        stored["quality"] = measure(plan, run, seed)
        results.save()
    else:
        progress.step(f"{label}: FD and label agreement already measured")
    synthetic_per_class = plan.expansion * per_class
    if (run.export_dir / "export.json").is_file():
        progress.step(f"{label}: synthetic set already exported, reusing {run.export_dir}")
    else:
        progress.step(
            f"{label}: exporting {synthetic_per_class} synthetic images per class to {run.export_dir}"
        )
        export(plan, run, synthetic_per_class, seed)
    train_arms(plan, per_class, seed, run, results, progress)


def _task(cfg: DictConfig) -> dict:
    # Progress goes to stderr, so stdout carries only the table. Lightning announces every trainer's
    # devices; the study's own lines say what runs.
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        return study(cfg)
    except KeyboardInterrupt:
        say("Stopped. Run the same command again to resume where it stopped.")
        raise


def main() -> None:
    command("study", _task)()
