"""`python -m handwriting_gan.study.pool dataset=<name> [labels_per_class=10] [seeds=3]`
(conf/pool_study.yaml): a few labelled images per class and a pool of unlabelled ones; which way of
labelling the pool helps a classifier most? This module owns the command: its checked settings, its folder
and results.json, and each seed's steps (the semi-supervised GAN, then the pool arms of
handwriting_gan.augment.pool); pool_report owns its table.

For each seed the training split is `labels_per_class` labelled images per class (drawn as the datasets'
`labels_per_class` draws them) and a pool of every other training image, whose labels only the oracle arm
(t) reads. Every choice ((b)'s tuning, self-training's threshold) is made on a validation part of the
labelled images; the dataset's test split is only scored. Each finished seed goes into <out>/results.json
at once, and each GAN run (<out>/runs/ssgan_seed_<s>/) continues from its checkpoint, so running the
command again resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from handwriting_gan.augment.classical import Search
from handwriting_gan.augment.pool import one_variation, pool_arms, tuned_copies
from handwriting_gan.augmenter import Augmenter, augmenter_file
from handwriting_gan.config import compose_config, instantiate
from handwriting_gan.errors import ConfigError
from handwriting_gan.files import atomic_path
from handwriting_gan.metrics.classifier import (
    ClassifierSettings,
    accuracy,
    fit_for_steps,
    predict,
    settings_for_steps,
)
from handwriting_gan.models.classifier_file import load_classifier
from handwriting_gan.pool_gan import gan_length, run_overrides, train_pool_gan
from handwriting_gan.runs import RunFolder
from handwriting_gan.schema import validate
from handwriting_gan.shell import check_count, choose_device, command, compose_checked, say, set_threads
from handwriting_gan.study.pool_report import pool_table
from handwriting_gan.study.settings import override_key, override_list
from handwriting_gan.study.store import ResultsFile

#: <out>/RESULTS_FILE holds every finished seed; <out>/TABLE_FILE the table; <out>/RUNS_FOLDER the GAN runs.
RESULTS_FILE, TABLE_FILE, RUNS_FOLDER = "results.json", "table.md", "runs"
#: results.json's "format" and "version": what marks the file as a pool study's.
RESULTS_FORMAT, RESULTS_VERSION = "handwriting_gan.study.pool", 1
#: Dataset keys the command sets for the GAN and the arms alike, and the setting a user changes instead.
DATASET_KEYS = {
    "dataset.labels_per_class": "labels_per_class",
    "dataset.batch_size": "gan_batch_size",
    "dataset.seed": "seeds",
}
#: Keys of the GAN's training config that the command sets itself, and why gan_overrides may not.
GAN_KEYS = {
    "model": "the pool study trains model=ssgan_mlp",
    "seed": "seeds=N chooses the seeds",
    "trainer.max_epochs": "gan_batches sets each run's length",
    "model.lr_decay_epochs": "the command sets it from gan_batches",
    "resume": "running the command again resumes each run",
}
#: Nodes of the GAN's training config that the command sets whole, and why gan_overrides may not.
GAN_NODES = {
    "dataset": "the arms must see the GAN's images: set the command's own dataset.<key>=<value>",
    "paths": "the command sets each run's folder; paths.data_dir and paths.cache_dir are its own keys",
}


@dataclass(frozen=True)
class PoolStudy:
    """The command's checked settings (conf/pool_study.yaml)."""

    #: The dataset group's choice and the command line's overrides of its keys.
    dataset: str
    dataset_overrides: tuple[str, ...]
    labels_per_class: int
    seeds: int
    gan_batches: int
    gan_batch_size: int
    gan_overrides: tuple[str, ...]
    arm_steps: int
    arm_classifier: ClassifierSettings
    classical_search: Search
    #: (q)'s augmenter: a shipped name or a run folder; None leaves (q) out.
    augmenter: str | None
    data_dir: Path
    cache_dir: Path
    out: Path
    device: str

    def identity(self) -> dict:
        """What makes two runs' results comparable: every setting but the seeds (which a resumed study may
        extend), the folders and the device."""
        values = dataclasses.asdict(self)
        for key in ("seeds", "data_dir", "cache_dir", "out", "device"):
            values.pop(key)
        values["arm_classifier"] = self.arm_classifier.as_dict()
        return json.loads(json.dumps(values))  # as results.json holds it: tuples as lists

    def run_folder(self, seed: int) -> RunFolder:
        return RunFolder(self.out / RUNS_FOLDER / f"ssgan_seed_{seed}")

    def describe(self) -> str:
        """The dataset as the command line chose it, e.g. `omniglot dataset.alphabets=held_out_a`."""
        return " ".join([self.dataset, *self.dataset_overrides])


# -- settings ---------------------------------------------------------------------------------------
def pool_study_config(overrides: Sequence[str] = ()) -> DictConfig:
    """conf/pool_study.yaml composed with `overrides` as the command line would (with Hydra's record of the
    dataset choice and of the overrides of its keys), for tests and notebooks."""
    return compose_config(list(overrides), config_name="pool_study", return_hydra_config=True)


def check_pool_study(cfg: DictConfig) -> PoolStudy:
    """The settings of `cfg` (conf/pool_study.yaml), each checked, or a ConfigError naming the first bad
    one. The dataset choice and the overrides of its keys come from Hydra's record: `cfg.hydra` when
    composed with it (`pool_study_config`), else the running command's."""
    if "hydra" in cfg:
        record = cfg.hydra
    else:
        from hydra.core.hydra_config import HydraConfig

        record = HydraConfig.get()
    dataset = record.runtime.choices.get("dataset")
    if dataset is None:
        raise ConfigError(
            "dataset is required: e.g. python -m handwriting_gan.study.pool dataset=mnist "
            "labels_per_class=10 (the options are the files of conf/dataset/)."
        )
    dataset_overrides = tuple(
        str(o) for o in record.overrides.task if override_key(str(o)).startswith("dataset.")
    )
    for override in dataset_overrides:
        instead = DATASET_KEYS.get(override_key(override))
        if instead is not None:
            raise ConfigError(f"{override}: the command sets it itself; set {instead}= instead.")
    labels_per_class = check_count(
        "labels_per_class", cfg.labels_per_class, 1, " (labelled training images per class, e.g. 10)"
    )
    seeds = check_count("seeds", cfg.seeds, 1, " (seeds=3 runs seeds 0, 1 and 2)")
    gan_batches = check_count("gan_batches", cfg.gan_batches, 1, " (e.g. 30000)")
    gan_batch_size = check_count("gan_batch_size", cfg.gan_batch_size, 1, " (e.g. 100)")
    gan_overrides = _check_gan_overrides(cfg.gan_overrides)
    base = ClassifierSettings.from_mapping(OmegaConf.to_container(cfg.classifier))
    arm_steps, arm_classifier = settings_for_steps(cfg.arm_classifier, base)
    search = cfg.classical_search
    if not isinstance(search, DictConfig):
        raise ConfigError(
            f"classical_search={search} must be a mapping of the tuning's settings "
            f"(see conf/pool_study.yaml)."
        )
    classical_search = Search.from_mapping(OmegaConf.to_container(search))
    augmenter = None if cfg.augmenter is None else str(cfg.augmenter)
    if augmenter is not None:
        augmenter_file(augmenter)  # a missing run or file fails before any work
    out = cfg.out
    if out is None:
        out = Path("outputs") / "pool_study" / f"{dataset}_{labels_per_class}"
    return PoolStudy(
        dataset=dataset,
        dataset_overrides=dataset_overrides,
        labels_per_class=labels_per_class,
        seeds=seeds,
        gan_batches=gan_batches,
        gan_batch_size=gan_batch_size,
        gan_overrides=gan_overrides,
        arm_steps=arm_steps,
        arm_classifier=arm_classifier,
        classical_search=classical_search,
        augmenter=augmenter,
        data_dir=Path(str(cfg.paths.data_dir)).expanduser().resolve(),
        cache_dir=Path(str(cfg.paths.cache_dir)).expanduser().resolve(),
        out=Path(str(out)).expanduser(),
        device=choose_device(cfg.device),
    )


def _check_gan_overrides(value) -> tuple[str, ...]:
    overrides = override_list(
        "gan_overrides", value, "'gan_overrides=[\"model.discriminator.hidden=[500,250]\"]'"
    )
    for override in overrides:
        key = override_key(override)
        reason = GAN_KEYS.get(key) or GAN_NODES.get(key.split(".")[0])
        if reason is not None:
            raise ConfigError(f"gan_overrides holds {override}, but {reason}.")
    return overrides


# -- results.json -----------------------------------------------------------------------------------
class PoolResults(ResultsFile):
    """`<out>/results.json`: every finished seed, rewritten atomically after each one.

    {"format", "version", "settings": PoolStudy.identity(), "seeds": {"0": {"arms": {key: accuracy}, ...}}}
    """

    FORMAT, VERSION, ENTRIES, WHAT = RESULTS_FORMAT, RESULTS_VERSION, "seeds", "pool study"

    def seed(self, seed: int) -> dict | None:
        """The stored record of `seed`, or None before it is finished."""
        return self.data["seeds"].get(str(seed))

    def store(self, seed: int, record: dict) -> None:
        self.data["seeds"][str(seed)] = record
        self.save()


# -- one seed ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SeedData:
    """A seed's images as the GAN's datamodule draws them: labelled (images, labels), the pool and its
    hidden true labels (for the oracle only), the test split, and the dataset's classes (its whole label
    space, as `dataset.classes` keeps labels) and image shape."""

    labelled: tuple[torch.Tensor, torch.Tensor]
    pool: torch.Tensor
    truth: torch.Tensor
    test: tuple[torch.Tensor, torch.Tensor]
    class_names: tuple[str, ...]
    image_shape: tuple[int, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def gan_overrides(
    plan: PoolStudy, seed: int, epochs: int | None = None, batch: int | None = None
) -> list[str]:
    """The training config of seed `seed`'s GAN: model=ssgan_mlp on the dataset with `labels_per_class`
    labels per class; with `epochs`, its length and learning-rate decay (without, the config the seed's
    images are read with)."""
    overrides = [
        "model=ssgan_mlp",
        f"dataset={plan.dataset}",
        *plan.dataset_overrides,
        f"dataset.labels_per_class={plan.labels_per_class}",
        f"paths.data_dir={plan.data_dir}",
        f"paths.cache_dir={plan.cache_dir}",
        f"seed={seed}",
    ]
    if epochs is None:
        return overrides
    return [
        *overrides,
        *run_overrides(epochs, batch, plan.device),
        *plan.gan_overrides,
    ]


def read_seed(plan: PoolStudy, seed: int) -> SeedData:
    """Seed `seed`'s labelled images, pool and test split; ConfigError when a class has fewer than
    labels_per_class training images or none is left for the pool."""
    datamodule = instantiate(compose_config(gan_overrides(plan, seed), run_dir=plan.out).dataset)
    split = datamodule.label_split()
    if not len(split.unlabelled):
        raise ConfigError(
            f"labels_per_class={plan.labels_per_class} leaves no training image of {plan.describe()} for "
            f"the pool; ask for fewer."
        )
    return SeedData(
        labelled=split.labelled,
        pool=split.unlabelled,
        truth=datamodule.hidden_labels(),
        test=datamodule.split(train=False),
        class_names=tuple(datamodule.class_names),
        image_shape=tuple(datamodule.image_shape),
    )


def seed_gan_length(plan: PoolStudy, data: SeedData) -> tuple[int, int, int]:
    """(epochs, batches per epoch, batch size) of the seed's GAN: gan_batches batches, in whole epochs of
    one pass over the larger of the labelled set and the pool."""
    return gan_length(len(data.labelled[1]), len(data.pool), plan.gan_batches, plan.gan_batch_size)


def check_gan(plan: PoolStudy, data: SeedData) -> None:
    """Compose seed 0's GAN config with the training command's checks of every override, so that a bad
    gan_overrides fails before any training."""
    epochs, _, batch = seed_gan_length(plan, data)
    try:
        overrides = gan_overrides(plan, 0, epochs, batch)
        validate(compose_checked("train", [*overrides, f"paths.run_dir={plan.run_folder(0).path.resolve()}"]))
    except ConfigError as error:
        raise ConfigError(f"the pool study's GAN: {error}") from None


def train_gan(plan: PoolStudy, seed: int, data: SeedData) -> tuple[Path, int]:
    """Seed `seed`'s semi-supervised GAN, trained in its run folder (continued from its checkpoint when one
    is there); returns its classifier.pt and its number of epochs."""
    run = plan.run_folder(seed)
    epochs, per_epoch, batch = seed_gan_length(plan, data)
    if run.classifier_file.is_file():
        say(f"  semi-supervised GAN: already trained, {run.classifier_file}")
        return run.classifier_file, epochs
    say(
        f"  semi-supervised GAN: {epochs} epoch{'s' if epochs > 1 else ''} of {per_epoch} batches of "
        f"{batch} labelled + {batch} pool images"
        f"{', continued from its checkpoint' if run.checkpoint.is_file() else ''}; "
        f"TensorBoard: {run.tensorboard_dir}"
    )
    return train_pool_gan(gan_overrides(plan, seed, epochs, batch), run.path, seed), epochs


def measure_seed(plan: PoolStudy, seed: int, data: SeedData, augmenter) -> dict[str, Any]:
    """Seed `seed`'s record: its GAN (trained or continued), (b)'s tuning, every pool arm's test accuracy
    and the GAN's discriminator's."""
    started = time.perf_counter()
    gan_file, epochs = train_gan(plan, seed, data)
    discriminator = load_classifier(gan_file)
    gan_labels = discriminator.label(data.pool)[0]

    def fit(images, labels, steps=plan.arm_steps):
        classifier, _ = fit_for_steps(
            images, labels, data.num_classes, plan.arm_classifier, steps, seed, plan.device
        )
        return classifier

    say(f"  tuning (b)'s classical augmentation: {plan.classical_search.trials} settings")
    best, trials, copies = tuned_copies(
        data.labelled, data.num_classes, plan.classical_search, fit, accuracy, seed
    )
    vary = None if augmenter is None else one_variation(augmenter, seed)
    measured = pool_arms(
        data.labelled,
        data.pool,
        data.test,
        copies,
        gan_labels,
        fit,
        predict,
        accuracy,
        seed,
        data.truth,
        say=lambda message: say(f"  {message}"),
        vary=vary,
    )
    record = {
        "seed": seed,
        "labelled": len(data.labelled[1]),
        "pool": len(data.pool),
        "test": len(data.test[1]),
        "gan_epochs": epochs,
        "classical_choice": {"setting": best.as_dict(), "trials": trials},
        **measured,
        "discriminator": float((discriminator.label(data.test[0])[0] == data.test[1]).float().mean()),
        # How much of the pool the GAN labelled right: what (p) trains on.
        "pool_gan_right": float((gan_labels == data.truth).float().mean()),
    }
    say(f"  the GAN's discriminator: {record['discriminator']:.1%}")
    record["seconds"] = time.perf_counter() - started
    return json.loads(json.dumps(record))  # as results.json holds it


# -- the command ------------------------------------------------------------------------------------
def pool_study(cfg: DictConfig) -> dict[str, Any]:
    """The command: check `cfg` (conf/pool_study.yaml), run or resume every seed, print and write the
    table. Returns {"records": each seed's record, "table", "files"}."""
    plan = check_pool_study(cfg)
    if plan.out.exists() and not plan.out.is_dir():
        raise ConfigError(f"out={plan.out} is a file, not a folder; choose another out=.")
    set_threads(cfg.threads)
    results = PoolResults(plan.out / RESULTS_FILE, plan.identity())
    todo = [seed for seed in range(plan.seeds) if results.seed(seed) is None]
    say(
        f"Pool study folder: {plan.out} ({plan.describe()}, {plan.labels_per_class} labels per class; "
        f"{plan.seeds} seed{'s' if plan.seeds > 1 else ''}, {plan.seeds - len(todo)} already finished)"
    )
    augmenter = None
    for seed in todo:
        data = read_seed(plan, seed)  # data mistakes (labels_per_class too large) fail before any training
        if seed == todo[0]:
            check_gan(plan, data)
            augmenter = load_augmenter(plan, data)
        say(
            f"Seed {seed} ({todo.index(seed) + 1} of {len(todo)} to run): {len(data.labelled[1])} labelled, "
            f"{len(data.pool)} in the pool, {len(data.test[1])} test images"
        )
        results.store(seed, measure_seed(plan, seed, data, augmenter))
    records = [results.seed(seed) for seed in range(plan.seeds)]
    table = pool_table(plan, records)
    files = {"results": plan.out / RESULTS_FILE, "table": plan.out / TABLE_FILE}
    with atomic_path(files["table"]) as tmp:
        tmp.write_text(table + "\n")
    print(table, flush=True)
    say(f"Finished. Table and results in {plan.out}")
    return {"records": records, "table": table, "files": {name: str(path) for name, path in files.items()}}


def load_augmenter(plan: PoolStudy, data: SeedData):
    """(q)'s augmenter, checked against the dataset's images; None without one."""
    if plan.augmenter is None:
        return None
    augmenter = Augmenter.load(plan.augmenter, plan.device)
    augmenter.check_fits(data.image_shape, data.class_names)
    return augmenter


def _task(cfg: DictConfig) -> dict[str, Any]:
    # Progress goes to stderr, so stdout carries only the table. Lightning announces every trainer's
    # devices; the command's own lines say what runs.
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        return pool_study(cfg)
    except KeyboardInterrupt:
        say("Stopped. Run the same command again to resume where it stopped.")
        raise


def main() -> None:
    command("pool_study", _task)()


if __name__ == "__main__":
    main()
