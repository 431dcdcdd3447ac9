"""The study's steps that are the project's other commands, each run in its own process: training a
GAN run (`python -m handwriting_gan`), measuring it (`handwriting_gan.evaluate`) and exporting its
synthetic set (`handwriting_gan.export`); and the progress line of every step."""

from __future__ import annotations

import json
import math
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from handwriting_gan.errors import ConfigError, UserError
from handwriting_gan.runs import RunFolder
from handwriting_gan.shell import say
from handwriting_gan.study.settings import Study, override_key
from handwriting_gan.study.store import RUNS_FOLDER

#: The generator metrics the table reports (handwriting_gan.metrics.report groups).
QUALITY_METRICS = ("fd", "label_agreement")
#: Overrides of every GAN run, before train_overrides (which may change them). The per-epoch figures
#: would cost more than the epochs themselves: an epoch of a few images per class is a single batch.
QUIET_RUN = [
    "name=study",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "~callbacks.samples",
    "~callbacks.losses",
]
#: Checkpoints per GAN run (a resumed study continues an interrupted run from its last one).
CHECKPOINTS_PER_RUN = 10
#: Lines of a failed command's output that its StudyStepError shows.
ERROR_LINES = 20


class StudyStepError(UserError):
    """A command the study ran (training, evaluate or export) failed; the message names it and shows
    the end of its output."""


class Progress:
    """One line per step on stderr: `[k/N] per_class=10 seed=2: what it is doing`."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0

    def step(self, message: str) -> None:
        """Count one step and say what it does."""
        self.done += 1
        say(f"[{self.done}/{self.total}] {message}")

    def skip(self, count: int, message: str) -> None:
        """One line for `count` steps that are already finished."""
        first, self.done = self.done + 1, self.done + count
        say(f"[{first}-{self.done}/{self.total}] {message}")


# -- the GAN runs -----------------------------------------------------------------------------------
def classifier_overrides(plan: Study) -> list[str]:
    """`classifier.<key>=<value>` for every setting of the study's domain classifier."""
    return [override(f"classifier.{key}", value) for key, value in plan.classifier.as_dict().items()]


def run_overrides(plan: Study, per_class: int, seed: int) -> list[str]:
    """The training command line of the GAN run (per_class, seed), before its length is known. The run's
    config records the study's domain classifier, so that evaluate and export of the run (the study's
    and anyone's) use the study's cached copy."""
    groups = [f"{group}={choice}" if choice else f"~{group}" for group, choice in plan.groups.items()]
    return [
        *[g for g in groups if g != "~experiment"],
        *plan.forwarded,
        *QUIET_RUN,
        *plan.train_overrides,
        *classifier_overrides(plan),
        f"dataset.per_class={per_class}",
        f"seed={seed}",
    ]


def run_config(
    plan: Study, per_class: int, seed: int, run_dir: Path, checked: bool = False
) -> tuple[DictConfig, list[str]]:
    """The training config of the GAN run (per_class, seed) in `run_dir`, and its overrides: composed
    as the training command composes its command line (`checked`: with its checks of every override,
    as check_runs does once), then given the trainer.max_epochs in which the run takes `gan_steps`
    batches, and a checkpoint interval of a tenth of that unless train_overrides set one."""
    from handwriting_gan.config import compose_config, instantiate
    from handwriting_gan.schema import validate
    from handwriting_gan.shell import compose_checked

    overrides = run_overrides(plan, per_class, seed)
    try:
        cfg = compose_checked("train", overrides) if checked else compose_config(overrides)
    except ConfigError as error:
        raise ConfigError(f"a GAN run of the study: {error}") from None
    length: dict[str, int] = {}
    max_epochs = int(cfg.trainer.max_epochs)
    if plan.gan_steps is not None:
        datamodule = instantiate(cfg.dataset)  # settings only: no data is read
        images = per_class * len(datamodule.selected_labels)
        batches = max(1, images // min(int(cfg.dataset.batch_size), images))
        max_epochs = length["trainer.max_epochs"] = math.ceil(plan.gan_steps / batches)
    if not any(override_key(o) == "callbacks.checkpoint.every_n_epochs" for o in plan.train_overrides):
        length["callbacks.checkpoint.every_n_epochs"] = max(1, max_epochs // CHECKPOINTS_PER_RUN)
    for key, value in length.items():
        OmegaConf.update(cfg, key, value)
        overrides.append(f"{key}={value}")
    OmegaConf.update(cfg, "paths.run_dir", str(run_dir.resolve()))
    validate(cfg)
    return cfg, overrides


def check_runs(plan: Study) -> None:
    """Compose and check the largest run's config (every override, as the training command checks its
    command line), build each of its objects once as the training command does before it makes a run
    folder, and read its data, so that a bad override, an unknown dataset, a GPU trainer on a machine
    without one or a per_class larger than a class fail before any training."""
    from handwriting_gan.assembly import construct
    from handwriting_gan.config import instantiate

    run_dir = plan.out / RUNS_FOLDER / "unclaimed"
    cfg, _ = run_config(plan, max(plan.per_class), 0, run_dir, checked=True)
    construct(cfg, run_dir)
    instantiate(cfg.dataset).split(train=True)  # raises ConfigError when a class has fewer than per_class


def train_gan(plan: Study, per_class: int, seed: int, progress: Progress) -> RunFolder:
    """The finished GAN run (per_class, seed): reused when finished, continued from its last checkpoint
    (`python -m handwriting_gan resume=<run>`) when a previous study stopped inside it, else trained
    (`python -m handwriting_gan <overrides> hydra.run.dir=<run>`)."""
    run = plan.run_folder(per_class, seed)
    label = f"per_class={per_class} seed={seed}"
    if run.is_finished():
        progress.step(f"{label}: GAN already trained, reusing {run.path}")
        return run
    cfg, overrides = run_config(plan, per_class, seed, run.path)
    resume = run.is_run() and run.checkpoint.is_file()
    length = f"{plan.gan_steps} steps" if plan.gan_steps else f"{cfg.trainer.max_epochs} epochs"
    if resume:
        progress.step(f"{label}: continuing the GAN from {run.checkpoint} (model={plan.model}, {length})")
        # The training command recomposes the run's config from its own .hydra/overrides.yaml.
        run_command("handwriting_gan", [f"resume={run.path.resolve()}"])
    else:
        progress.step(f"{label}: training the GAN (model={plan.model}, {length})")
        if run.path.exists():  # stopped before its first checkpoint: nothing to continue
            shutil.rmtree(run.path)
        # Hydra writes the run's record (.hydra/), as for any run, so that evaluate, export, the
        # notebooks and `python -m handwriting_gan resume=<run>` read it like any other.
        run_command("handwriting_gan", [*overrides, f"hydra.run.dir={run.path.resolve()}"])
    if not run.is_finished():
        raise StudyStepError(f"the GAN run {run.path} ended without writing {run.generator_file.name}.")
    return run


# -- evaluate and export ----------------------------------------------------------------------------
def measure(plan: Study, run: RunFolder, seed: int) -> dict:
    """FD, its floor, their ratio and label agreement of the run's generator:
    `python -m handwriting_gan.evaluate run_dir=<run> metrics=[fd,label_agreement] ...`, which also
    writes them to <run>/metrics.json."""
    stdout = run_command(
        "handwriting_gan.evaluate",
        [
            *shared_options(plan, run),
            override("num_samples", plan.quality_samples),
            override("seed", seed),
            override("metrics", QUALITY_METRICS),
            override("threads", torch_threads()),  # the study's own (set_threads(cfg.threads))
        ],
    )
    values = last_json_line(stdout, "handwriting_gan.evaluate")  # NaN and infinity come as null
    fd, floor = values["fd"], values["fd_floor"]
    return {
        "fd": fd,
        "fd_floor": floor,
        "fd_ratio": fd / floor if fd is not None and floor is not None and floor > 0 else None,
        "label_agreement": values.get("label_agreement"),  # unconditional generators have none
        "num_samples": values["num_samples"],
        "classifier_test_acc": values["classifier_test_acc"],
    }


def export(plan: Study, run: RunFolder, per_class: int, seed: int) -> dict:
    """The export command's per-class draw of the run's generator into <run>/export (npz), labeled by
    the domain classifier's probabilities: `python -m handwriting_gan.export run_dir=<run> format=npz
    per_class=<per_class> ...`; returns its JSON line."""
    stdout = run_command(
        "handwriting_gan.export",
        [
            *shared_options(plan, run),
            "format=npz",
            override("per_class", per_class),
            override("seed", seed),
            override("out", run.export_dir.resolve()),
        ],
    )
    return last_json_line(stdout, "handwriting_gan.export")


def shared_options(plan: Study, run: RunFolder) -> list[str]:
    """The evaluate and export commands' options the study sets: the run's own data and cache folders
    (as absolute paths, read here, where the run's relative ones mean what they meant to it), the device
    and the domain classifier. The run's config records the classifier too; naming it here as well
    keeps the study's measurements and filter on its own classifier whatever a run's config says."""
    cfg = run.load_config()
    data_dir = Path(str(cfg.paths.data_dir)).expanduser().resolve()
    cache_dir = Path(str(OmegaConf.select(cfg, "paths.cache_dir", default="cache"))).expanduser().resolve()
    return [
        override("run_dir", run.path.resolve()),
        override("data_dir", data_dir),
        override("cache_dir", cache_dir),
        override("device", plan.device),
        *classifier_overrides(plan),
    ]


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


# -- the sibling commands ---------------------------------------------------------------------------
def run_command(module: str, arguments: Sequence[str]) -> str:
    """Run `python -m <module> <arguments>` (a command of this package) in its own process, in this
    one's folder and environment; returns its stdout. Raises StudyStepError naming the command line and
    showing the last ERROR_LINES lines of its output when it fails."""
    line = [sys.executable, "-m", module, *arguments]
    finished = subprocess.run(line, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if finished.returncode != 0:
        output = [*finished.stdout.splitlines(), *finished.stderr.splitlines()]
        tail = "\n".join("    " + text for text in output[-ERROR_LINES:]) or "    (no output)"
        shown = shlex.join(["python", "-m", module, *arguments])
        raise StudyStepError(
            f"the study's step `{shown}` failed (exit code {finished.returncode}); the last lines of its "
            f"output:\n{tail}\nFix the cause and run the study again: it resumes where it stopped."
        )
    return finished.stdout


def override(key: str, value) -> str:
    """`key=value` as a Hydra command-line override, the value quoted where Hydra would read it as
    something else (a path with spaces, commas, brackets, ...)."""
    if isinstance(value, list | tuple):
        return f"{key}=[{','.join(str(item) for item in value)}]"
    text = str(value)
    if text and all(c.isalnum() or c in "/._-" for c in text):
        return f"{key}={text}"
    return f"{key}='" + text.replace("'", "\\'") + "'"


def last_json_line(stdout: str, module: str) -> dict:
    """The JSON object a command printed as its last line of stdout."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    try:
        values = json.loads(lines[-1])
    except (IndexError, ValueError):
        values = None
    if not isinstance(values, dict):
        raise StudyStepError(f"`python -m {module}` printed no JSON line; its stdout ended: {lines[-3:]}")
    return values
