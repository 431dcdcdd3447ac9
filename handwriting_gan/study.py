"""The augmentation study command: does a GAN's synthetic data help a classifier that has few real images?

`python -m handwriting_gan.study dataset=<name> per_class=[10,50] seeds=3 [model=cgan_mlp] [out=<folder>]`
(conf/study.yaml). For each size and seed it trains a GAN on `per_class` real training images per class
(the training command, run as `python -m handwriting_gan` in a subprocess, one run folder each under
<out>/runs/), measures it (FD over its floor and label agreement: `python -m handwriting_gan.evaluate`),
exports a labeled synthetic set (`python -m handwriting_gan.export`'s per-class draw, into the run's
export/) and trains the domain classifier's architecture five ways, each tested on the full real test
split:

    (a) real          the real images only
    (b) classical     + `expansion` randomly shifted, rotated and elastically distorted copies of each
    (c) synthetic     + `expansion` x per_class synthetic images of each class
    (d) filtered      + those of (c) the full-data domain classifier labels with confidence >= threshold
                      (the confidences the export wrote)
    (e) both          + the copies of (b) and the synthetic images of (d): does synthetic data add
                      anything to classical augmentation?

The other commands run as the siblings they are (handwriting_gan/shell.py's command shell, each in its
own process); a failing one raises a StudyStepError naming its command line and showing the end of its
output.

Every finished step goes into <out>/results.json at once (atomically), and finished GAN runs and exports
stay on disk, so running the command again resumes where it stopped. At the end it prints the table
(markdown: mean +- std over seeds per size) and writes it as table.md, table.json, table.csv and the
plot accuracy.png.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import logging
import math
import shlex
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from handwriting_gan.errors import ConfigError, DataError, UserError
from handwriting_gan.files import atomic_path
from handwriting_gan.runs import STUDY_RESULTS_FILE, STUDY_RESULTS_FORMAT, STUDY_RUNS_FOLDER, RunFolder
from handwriting_gan.shell import check_count, choose_device, command, say, set_threads

if TYPE_CHECKING:  # torch and Lightning load once the checks of the command line have passed
    import torch

    from handwriting_gan.metrics.classifier import ClassifierSettings


#: The ways the classifier is trained, in table order, and their column titles.
ARMS = {
    "real": "(a) real",
    "classical": "(b) + classical aug.",
    "synthetic": "(c) + synthetic",
    "filtered": "(d) + filtered synthetic",
    "both": "(e) + classical aug. + filtered synthetic",
}
#: The arms that add the filtered synthetic images (their cells say how many were kept).
FILTERED_ARMS = ("filtered", "both")
#: Steps per (size, seed): the GAN, its metrics, its export, and one per arm.
STEPS_PER_RUN = 3 + len(ARMS)
#: The generator metrics the table reports (handwriting_gan.metrics.report groups).
QUALITY_METRICS = ("fd", "label_agreement")
#: Fewer draws leave FD's covariances meaningless (the evaluate command's own minimum).
MIN_QUALITY_SAMPLES = 10
#: results.json, and the folder under `out` of the GAN runs, one <RUNS_FOLDER>/<run_key> each: the run
#: folder's module owns the layout, so that evaluate and export find a study run's settings.
RESULTS_FILE = STUDY_RESULTS_FILE
RUNS_FOLDER = STUDY_RUNS_FOLDER
RESULTS_FORMAT = STUDY_RESULTS_FORMAT
RESULTS_VERSION = 1
#: Keys of a GAN run's config the study sets for every run; train_overrides may not set them.
STUDY_KEYS = ("dataset.per_class", "seed", "resume", "paths.run_dir")
#: Overrides of every GAN run, before train_overrides (which may change them). Per-epoch figures cost
#: about 0.8 s an epoch on the CPU, and an epoch of 10 images per class is a single batch.
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


# -- the study's settings -------------------------------------------------------------------------
#: The training config groups that choose a GAN run. conf/study.yaml has them too, so that the command
#: line and experiments choose them as they do for `python -m handwriting_gan`.
RUN_GROUPS = ("dataset", "model", "augment", "experiment")
#: Nodes whose keys a study's command line may change (e.g. dataset.batch_size=100), passed on to every run.
FORWARDED_NODES = ("dataset", "model", "augment")


@dataclass(frozen=True)
class Study:
    """The study's checked settings (conf/study.yaml)."""

    #: The choice of each of RUN_GROUPS (None: none).
    groups: dict
    #: The command line's overrides of keys of FORWARDED_NODES.
    forwarded: tuple[str, ...]
    per_class: tuple[int, ...]
    seeds: int
    train_overrides: tuple[str, ...]
    gan_steps: int | None
    expansion: int
    filter_confidence: float
    classifier: ClassifierSettings
    arm_classifier: ClassifierSettings
    arm_steps: int
    classical: dict
    quality_samples: int
    out: Path
    device: str

    @property
    def dataset(self) -> str:
        return self.groups["dataset"]

    @property
    def model(self) -> str:
        return self.groups["model"]

    @property
    def experiment(self) -> str | None:
        return self.groups["experiment"]

    def identity(self) -> dict:
        """What makes two studies' results comparable: every setting but the sizes and seeds (which a
        resumed study may extend), the folder and the device."""
        values = dataclasses.asdict(self)
        for key in ("per_class", "seeds", "out", "device"):
            values.pop(key)
        values["forwarded"] = list(self.forwarded)
        values["train_overrides"] = list(self.train_overrides)
        values["classifier"] = self.classifier.as_dict()
        values["arm_classifier"] = self.arm_classifier.as_dict()
        return values

    @property
    def runs(self) -> list[tuple[int, int]]:
        """(per_class, seed) of every GAN run, in the order they are made."""
        return [(size, seed) for size in self.per_class for seed in range(self.seeds)]

    def run_folder(self, per_class: int, seed: int) -> RunFolder:
        return RunFolder(self.out / RUNS_FOLDER / run_key(per_class, seed))


def run_key(per_class: int, seed: int) -> str:
    return f"pc{per_class}_seed{seed}"


def study_config(overrides: Sequence[str] = ()) -> DictConfig:
    """conf/study.yaml composed with `overrides` as the command line would (with Hydra's record of the
    group choices and overrides, which the study passes on to its runs), for tests and notebooks."""
    from handwriting_gan.config import compose_config

    return compose_config(list(overrides), config_name="study", return_hydra_config=True)


def check_study(cfg: DictConfig) -> Study:
    """The settings of `cfg` (conf/study.yaml), each checked, or a ConfigError naming the first bad one.

    The group choices and command-line overrides come from Hydra's record: `cfg.hydra` when composed
    with it (`study_config`), else the running command's."""
    if "hydra" in cfg:
        record = cfg.hydra
    else:
        from hydra.core.hydra_config import HydraConfig

        record = HydraConfig.get()
    groups = {group: record.runtime.choices.get(group) for group in RUN_GROUPS}
    if groups["dataset"] is None:
        raise ConfigError(
            "dataset is required (or an experiment that chooses one): e.g. python -m handwriting_gan.study "
            "dataset=mnist per_class=[10,50] seeds=3."
        )
    if groups["model"] is None:
        raise ConfigError("the model group is empty: name a model config, e.g. model=cgan_mlp (conf/model/).")
    forwarded = tuple(
        str(o)
        for o in record.overrides.task
        if "." in _key(str(o)) and _key(str(o)).split(".")[0] in FORWARDED_NODES
    )
    per_class = _check_sizes(cfg.per_class)
    seeds = check_count("seeds", cfg.seeds, 1, " (seeds=3 runs seeds 0, 1 and 2)")
    gan_steps = cfg.gan_steps if cfg.gan_steps is None else check_count("gan_steps", cfg.gan_steps, 1)
    train_overrides = _check_train_overrides(cfg.train_overrides, gan_steps)
    expansion = check_count("expansion", cfg.expansion, 1, " (e.g. 10: ten extra images per real one)")
    filter_confidence = _check_probability("filter_confidence", cfg.filter_confidence)
    quality_samples = check_count(
        "quality.num_samples", cfg.quality.num_samples, MIN_QUALITY_SAMPLES, " (e.g. 2000)"
    )
    if not isinstance(cfg.classical, DictConfig) or "_target_" not in cfg.classical:
        raise ConfigError(
            "classical must be a transform config with a _target_, e.g. torchvision.transforms.v2.Compose "
            "(see conf/study.yaml)."
        )
    from handwriting_gan.metrics.classifier import ClassifierSettings

    classifier = ClassifierSettings.from_mapping(OmegaConf.to_container(cfg.classifier))
    arm_steps, arm_classifier = _check_arm_classifier(cfg.arm_classifier, classifier)
    out = cfg.out
    if out is None:
        name = "_".join(groups[key] for key in ("dataset", "model", "experiment") if groups[key])
        out = Path("outputs") / "study" / name
    return Study(
        groups=groups,
        forwarded=forwarded,
        per_class=per_class,
        seeds=seeds,
        train_overrides=train_overrides,
        gan_steps=gan_steps,
        expansion=expansion,
        filter_confidence=filter_confidence,
        classifier=classifier,
        arm_classifier=arm_classifier,
        arm_steps=arm_steps,
        classical=OmegaConf.to_container(cfg.classical),
        quality_samples=quality_samples,
        out=Path(str(out)).expanduser(),
        device=choose_device(cfg.device),
    )


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _check_sizes(value) -> tuple[int, ...]:
    sizes = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    advice = "; e.g. per_class=[10,50]"
    if not isinstance(sizes, ListConfig | list) or not len(sizes):
        raise ConfigError(f"per_class={value} must be a list of real training images per class{advice}.")
    items = list(sizes)
    bad = [s for s in items if isinstance(s, bool) or not isinstance(s, int) or s < 1]
    if bad:
        raise ConfigError(
            f"per_class={items} holds {bad}: each size must be a whole number of at least 1{advice}."
        )
    if len(set(items)) != len(items):
        raise ConfigError(f"per_class={items} names a size twice; list each size once{advice}.")
    return tuple(sorted(items))


def _check_probability(key: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < 1.0:
        raise ConfigError(f"{key}={value} must be a probability in [0, 1), e.g. 0.9.")
    return float(value)


def _check_train_overrides(value, gan_steps: int | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, ListConfig | list) or not all(isinstance(o, str) for o in value):
        raise ConfigError(
            f"train_overrides={value} must be a list of training overrides, e.g. "
            f"train_overrides=[augment=diffaugment,trainer.max_epochs=300]."
        )
    overrides = tuple(value)
    for override in overrides:
        key = _key(override)
        if "=" not in override and not override.startswith("~"):
            raise ConfigError(f"train_overrides holds {override!r}, which is not an override key=value.")
        if key in RUN_GROUPS:
            raise ConfigError(
                f"train_overrides holds {override}: choose the {key} with the study's own {key}=<name> "
                f"(or ~{key} for none), as for `python -m handwriting_gan`."
            )
        if key in STUDY_KEYS or key.startswith("hydra"):
            raise ConfigError(
                f"train_overrides holds {override}, but the study sets {key} for each run itself "
                f"(per_class=[...] and seeds=N choose the sizes and seeds)."
            )
        if key == "trainer.max_epochs" and gan_steps is not None:
            raise ConfigError(
                f"train_overrides holds {override} while gan_steps={gan_steps} sets each run's length; "
                f"pass gan_steps=null to train for trainer.max_epochs epochs instead."
            )
    return overrides


def _check_arm_classifier(value, classifier: ClassifierSettings) -> tuple[int, ClassifierSettings]:
    from handwriting_gan.metrics.classifier import ClassifierSettings

    changes = OmegaConf.to_container(value) if isinstance(value, DictConfig) else value
    if not isinstance(changes, dict):
        raise ConfigError(f"arm_classifier={value} must be a mapping, e.g. {{steps: 1000, batch_size: 64}}.")
    changes = dict(changes)
    steps = check_count("arm_classifier.steps", changes.pop("steps", None), 1, " (e.g. 1000)")
    known = {field.name for field in dataclasses.fields(ClassifierSettings)} - {"epochs", "min_steps", "seed"}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ConfigError(
            f"arm_classifier has unknown keys {unknown}; it takes steps and any of {sorted(known)} "
            f"(epochs and min_steps follow from steps; the seed is the study's)."
        )
    try:
        return steps, ClassifierSettings.from_mapping({**classifier.as_dict(), **changes})
    except ConfigError as error:
        raise ConfigError(f"arm_classifier: {error}") from None


# -- progress ---------------------------------------------------------------------------------------
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


# -- results.json -----------------------------------------------------------------------------------
class Results:
    """`<out>/results.json`: every finished step of the study, rewritten atomically after each one.

    {"format", "version", "settings": Study.identity(), "runs": {"pc10_seed0": {"per_class", "seed",
    "quality": {...}, "arms": {"real": {"test_acc", ...}, ...}}}}
    """

    def __init__(self, path: Path, settings: dict) -> None:
        self.path = path
        self.data = {"format": RESULTS_FORMAT, "version": RESULTS_VERSION, "settings": settings, "runs": {}}
        if path.exists():
            self.data = self._read(settings)

    def _read(self, settings: dict) -> dict:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as error:
            raise DataError(
                f"{self.path} cannot be read ({error}); move it away to start the study over, or choose "
                f"another out=."
            ) from None
        if not isinstance(data, dict) or data.get("format") != RESULTS_FORMAT:
            raise ConfigError(f"{self.path} is not a study's results file; choose another out=.")
        stored = data.get("settings", {})
        changed = sorted(key for key in {*stored, *settings} if stored.get(key) != settings.get(key))
        if changed:
            details = "; ".join(f"{k}: {stored.get(k)!r} there, {settings.get(k)!r} now" for k in changed)
            raise ConfigError(
                f"{self.path} holds a study with other settings ({details}). Resuming would mix them: "
                f"run with the same settings, or choose another out= for the new ones."
            )
        return data

    def run(self, per_class: int, seed: int) -> dict:
        return self.data["runs"].setdefault(
            run_key(per_class, seed), {"per_class": per_class, "seed": seed, "quality": None, "arms": {}}
        )

    def save(self) -> None:
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps(self.data, indent=2) + "\n")


# -- the GAN runs -----------------------------------------------------------------------------------
def run_overrides(plan: Study, per_class: int, seed: int) -> list[str]:
    """The training command line of the GAN run (per_class, seed), before its length is known."""
    groups = [f"{group}={choice}" if choice else f"~{group}" for group, choice in plan.groups.items()]
    return [
        *[g for g in groups if g != "~experiment"],
        *plan.forwarded,
        *QUIET_RUN,
        *plan.train_overrides,
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
    if not any(_key(o) == "callbacks.checkpoint.every_n_epochs" for o in plan.train_overrides):
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


def shared_options(plan: Study, run: RunFolder) -> list[str]:
    """The evaluate and export commands' options the study sets: the run's own data and cache folders
    (as absolute paths, read here, where the run's relative ones mean what they meant to it), the device
    and the domain classifier."""
    cfg = run.load_config()
    data_dir = Path(str(cfg.paths.data_dir)).expanduser().resolve()
    cache_dir = Path(str(OmegaConf.select(cfg, "paths.cache_dir", default="cache"))).expanduser().resolve()
    return [
        override("run_dir", run.path.resolve()),
        override("data_dir", data_dir),
        override("cache_dir", cache_dir),
        override("device", plan.device),
        *[override(f"classifier.{key}", value) for key, value in plan.classifier.as_dict().items()],
    ]


# -- the training sets -----------------------------------------------------------------------------
@contextmanager
def one_thread() -> Iterator[None]:
    """Per-image transforms of a 28x28 image are too small to split across threads: the elastic one took
    2.4 ms with one thread and 80 ms with two on the busy 2-core machine the study was written on."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def classical_copies(
    images: torch.Tensor, labels: torch.Tensor, transform: Callable, copies: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """`copies` augmented versions of every uint8 image (N, C, H, W), each with its own random parameters
    drawn from `seed`, and their labels: copy k of image i is at k * N + i."""
    import torch

    with torch.random.fork_rng(devices=[]), one_thread():
        torch.manual_seed(seed)
        augmented = [transform(image) for _ in range(copies) for image in images]
    if augmented and (augmented[0].dtype != images.dtype or augmented[0].shape != images.shape[1:]):
        raise ConfigError(
            f"classical turns {images.dtype} images of {list(images.shape[1:])} into {augmented[0].dtype} "
            f"ones of {list(augmented[0].shape)}; it must keep their type and size (transforms of "
            f"torchvision.transforms.v2 that move pixels, not ToDtype or Resize)."
        )
    if not augmented:
        return images[:0], labels[:0]
    return torch.stack(augmented), labels.repeat(copies)


def fit_arm(
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    settings: ClassifierSettings,
    steps: int,
    seed: int,
    device: str,
):
    """The domain classifier's architecture trained on (images, labels) for about `steps` optimizer
    steps (whole epochs), whatever the training set's size; returns it and its number of epochs."""
    from handwriting_gan.metrics import classifier

    # The classifier's own min_steps rule gives the epochs: at least one, and as many as `steps` needs.
    settings = dataclasses.replace(settings, epochs=1, min_steps=steps, seed=seed)
    # fit_classifier logs up to ten epoch lines of its own: the study's progress line says what trains.
    level = classifier.log.level
    classifier.log.setLevel(logging.WARNING)
    try:
        epochs = settings.epochs_for(len(images))
        return classifier.fit_classifier(images, labels, num_classes, settings, device), epochs
    finally:
        classifier.log.setLevel(level)


def run_arms(plan: Study, per_class: int, seed: int, run: RunFolder, results: Results, progress: Progress):
    """Measure the generator and train (a)-(e) for the run (per_class, seed), skipping stored steps."""
    import torch

    from handwriting_gan.config import instantiate
    from handwriting_gan.data.exports import read_export
    from handwriting_gan.metrics.cache import reference_data
    from handwriting_gan.metrics.classifier import accuracy

    label = f"per_class={per_class} seed={seed}"
    stored = results.run(per_class, seed)
    if stored["quality"] is None:
        progress.step(f"{label}: measuring FD and label agreement ({plan.quality_samples} samples)")
        stored["quality"] = measure(plan, run, seed)
        results.save()
    else:
        progress.step(f"{label}: FD and label agreement already measured")

    export_dir = run.export_dir
    synthetic_per_class = plan.expansion * per_class
    if (export_dir / "export.json").is_file():
        progress.step(f"{label}: synthetic set already exported, reusing {export_dir}")
    else:
        progress.step(f"{label}: exporting {synthetic_per_class} synthetic images per class to {export_dir}")
        export(plan, run, synthetic_per_class, seed)

    datamodule = instantiate(run.load_config().dataset)
    images, labels = datamodule.split(train=True)
    test_images, test_labels = reference_data(datamodule).split(train=False)
    synthetic = read_export(export_dir)
    confident = confidences(export_dir) >= plan.filter_confidence
    filtered = synthetic.images[confident], synthetic.labels[confident]
    kept = len(filtered[1])
    transform = instantiate_classical(plan)
    # (b)'s copies, made once for (b) and (e) (the elastic transform is the slow part) and only if needed.
    augmented = functools.cache(lambda: classical_copies(images, labels, transform, plan.expansion, seed))
    for arm, title in ARMS.items():
        if arm in stored["arms"]:
            progress.step(f"{label}: {title} already trained and tested")
            continue
        if arm == "real":
            extra_images, extra_labels = images[:0], labels[:0]
        elif arm == "classical":
            extra_images, extra_labels = augmented()
        elif arm == "synthetic":
            extra_images, extra_labels = synthetic.images, synthetic.labels
        elif arm == "filtered":
            extra_images, extra_labels = filtered
        else:  # both: (b)'s copies and (d)'s synthetic images
            extra_images, extra_labels = (torch.cat(pair) for pair in zip(augmented(), filtered, strict=True))
        train_images = torch.cat([images, extra_images])
        train_labels = torch.cat([labels, extra_labels])
        kinds = {
            "classical": f"{len(extra_images)} augmented",
            "both": f"{len(extra_images) - kept} augmented + {kept} synthetic",
        }
        progress.step(
            f"{label}: {title}: training the classifier on {len(images)} real + "
            f"{kinds.get(arm, f'{len(extra_images)} synthetic')} images"
        )
        classifier, epochs = fit_arm(
            train_images,
            train_labels,
            datamodule.num_classes,
            plan.arm_classifier,
            plan.arm_steps,
            seed,
            plan.device,
        )
        stored["arms"][arm] = {
            "test_acc": accuracy(classifier, test_images, test_labels),
            "real_images": len(images),
            "extra_images": len(extra_images),
            "epochs": epochs,
            "test_images": len(test_images),
        }
        if arm in FILTERED_ARMS:
            stored["arms"][arm]["kept_fraction"] = kept / max(1, len(synthetic.labels))
        results.save()


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


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


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


def confidences(export_dir: Path) -> torch.Tensor:
    """The domain classifier's probability of each exported image's label, as the export wrote it (the
    npz format's `confidences`, what the export's min_confidence filters on)."""
    import numpy as np
    import torch

    from handwriting_gan.data.exports import NPZ_FILE

    path = export_dir / NPZ_FILE
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return torch.from_numpy(arrays["confidences"].astype(np.float32))
    except (OSError, ValueError, KeyError) as error:
        raise DataError(
            f"{path} holds no confidences ({error}); remove {export_dir} and run the study again to "
            f"export it anew."
        ) from None


# -- the table --------------------------------------------------------------------------------------
def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation; std is None for a single value, both None for none."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def summarize(plan: Study, results: Results) -> list[dict]:
    """One row per size: mean and std over the seeds of each arm's test accuracy, FD / floor and label
    agreement, and the fraction of synthetic images (d) kept."""
    rows = []
    for size in plan.per_class:
        runs = [results.run(size, seed) for seed in range(plan.seeds)]
        row: dict[str, Any] = {
            "per_class": size,
            "seeds": sum(1 for r in runs if len(r["arms"]) == len(ARMS)),
        }
        for arm in ARMS:
            row[f"{arm}_mean"], row[f"{arm}_std"] = mean_std(
                [r["arms"][arm]["test_acc"] for r in runs if arm in r["arms"]]
            )
        quality = [r["quality"] for r in runs if r["quality"]]
        for key in ("fd_ratio", "label_agreement"):
            row[f"{key}_mean"], row[f"{key}_std"] = mean_std([q[key] for q in quality])
        row["filtered_kept"] = mean_std(
            [r["arms"]["filtered"]["kept_fraction"] for r in runs if "filtered" in r["arms"]]
        )[0]
        rows.append(row)
    return rows


def _cell(mean: float | None, std: float | None, scale: float = 1.0, digits: int = 1) -> str:
    if mean is None:
        return "-"
    text = f"{scale * mean:.{digits}f}"
    return text if std is None else f"{text} ± {scale * std:.{digits}f}"


def markdown_table(plan: Study, rows: list[dict]) -> str:
    """The table as markdown, with a line that says what the numbers are."""
    titles = [
        "per_class",
        "seeds",
        *[f"{t} (≥ {plan.filter_confidence:g})" if a in FILTERED_ARMS else t for a, t in ARMS.items()],
        f"FD / floor ({plan.quality_samples} samples)",
        "label agreement",
    ]
    lines = ["| " + " | ".join(titles) + " |", "| " + " | ".join(["---:"] * len(titles)) + " |"]
    for row in rows:
        arms = [_cell(row[f"{a}_mean"], row[f"{a}_std"], 100) for a in ARMS]
        if row["filtered_kept"] is not None:
            arms[list(ARMS).index("filtered")] += f" (kept {100 * row['filtered_kept']:.0f}%)"
        cells = [
            str(row["per_class"]),
            str(row["seeds"]),
            *arms,
            _cell(row["fd_ratio_mean"], row["fd_ratio_std"]),
            _cell(row["label_agreement_mean"], row["label_agreement_std"], digits=3),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    chosen = " ".join(f"{group}={choice}" for group, choice in plan.groups.items() if choice)
    length = f"{plan.gan_steps} GAN steps" if plan.gan_steps else "GANs of trainer.max_epochs epochs"
    what = (
        f"Test accuracy (%) on the full real test split, mean ± std over seeds. {chosen}, {length}, "
        f"{plan.expansion} extra images per real one in (b)-(d) (both in (e)), classifiers trained "
        f"{plan.arm_steps} steps each."
    )
    return "\n".join([what, "", *lines])


def write_outputs(plan: Study, rows: list[dict], table: str) -> dict[str, Path]:
    """table.md, table.json, table.csv and accuracy.png in the study folder, each written atomically."""
    paths = {name: plan.out / name for name in ("table.md", "table.json", "table.csv", "accuracy.png")}
    with atomic_path(paths["table.md"]) as tmp:
        tmp.write_text(table + "\n")
    record = {
        "settings": {**plan.identity(), "per_class": list(plan.per_class), "seeds": plan.seeds},
        "arms": ARMS,
        "rows": rows,
    }
    with atomic_path(paths["table.json"]) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    with atomic_path(paths["table.csv"]) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    with atomic_path(paths["accuracy.png"]) as tmp:
        plot(plan, rows).savefig(tmp, format="png")
    return paths


def plot(plan: Study, rows: list[dict]):
    """Test accuracy against real images per class, one line per arm, with std error bars."""
    from matplotlib.figure import Figure  # no pyplot: nothing global, no display needed

    figure = Figure(figsize=(9, 4), dpi=100, layout="tight")
    axes = figure.subplots()
    sizes = [row["per_class"] for row in rows]
    for arm, title in ARMS.items():
        means = [row[f"{arm}_mean"] for row in rows]
        stds = [row[f"{arm}_std"] or 0.0 for row in rows]
        shown = [i for i, mean in enumerate(means) if mean is not None]
        axes.errorbar(
            [sizes[i] for i in shown],
            [means[i] for i in shown],
            yerr=[stds[i] for i in shown],
            label=title,
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
    axes.set_title(f"{plan.dataset}, {plan.model}: mean ± std over {seeds}")
    axes.grid(alpha=0.3)
    # Beside the axes, not on them: inside, it hid points (e.g. a low (c)) wherever it was placed.
    axes.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize="small")
    return figure


# -- the command ------------------------------------------------------------------------------------
def study(cfg: DictConfig) -> dict:
    """The command: check `cfg` (conf/study.yaml), run or resume every step, print and write the table.
    Returns {"rows", "table", "files"}."""
    plan = check_study(cfg)
    if plan.out.exists() and not plan.out.is_dir():
        raise ConfigError(f"out={plan.out} is a file, not a folder; choose another out=.")
    set_threads(cfg.threads)
    results = Results(plan.out / RESULTS_FILE, plan.identity())
    todo = [
        (size, seed)
        for size, seed in plan.runs
        if results.run(size, seed)["quality"] is None or len(results.run(size, seed)["arms"]) < len(ARMS)
    ]
    if todo:
        check_runs(plan)
        instantiate_classical(plan)
    say(
        f"Study folder: {plan.out} ({len(plan.runs)} GAN runs of {STEPS_PER_RUN} steps, "
        f"{len(plan.runs) - len(todo)} already finished)"
    )
    progress = Progress(len(plan.runs) * STEPS_PER_RUN)
    for size, seed in plan.runs:
        if (size, seed) not in todo:
            progress.skip(STEPS_PER_RUN, f"per_class={size} seed={seed}: finished (stored in results.json)")
            continue
        run = train_gan(plan, size, seed, progress)
        run_arms(plan, size, seed, run, results, progress)
    rows = summarize(plan, results)
    table = markdown_table(plan, rows)
    files = write_outputs(plan, rows, table)
    print(table, flush=True)
    say(f"Finished. Table, CSV, JSON and plot in {plan.out}")
    return {"rows": rows, "table": table, "files": {name: str(path) for name, path in files.items()}}


def instantiate_classical(plan: Study):
    """`classical`, built once before any work so that a mistake in it is found first."""
    from hydra.errors import InstantiationException

    from handwriting_gan.config import instantiate

    try:
        transform = instantiate(plan.classical)
    except InstantiationException as error:
        raise ConfigError(f"classical cannot be built: {str(error).splitlines()[0]}") from None
    if not callable(transform):
        raise ConfigError(f"classical builds a {type(transform).__name__}, which is not a transform.")
    return transform


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


if __name__ == "__main__":
    main()
