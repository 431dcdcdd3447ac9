"""The study's plan: conf/study.yaml composed and checked into a Study, every setting checked before any
work, each mistake a ConfigError that names the value."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, ListConfig, OmegaConf

from handwriting_gan.augment.arms import ARMS, BY_KEY, Arm
from handwriting_gan.errors import ConfigError
from handwriting_gan.runs import RunFolder
from handwriting_gan.shell import check_count, choose_device
from handwriting_gan.study.store import RUNS_FOLDER, run_key

if TYPE_CHECKING:  # torch loads once the checks of the command line have passed
    from handwriting_gan.augment.classical import Search
    from handwriting_gan.metrics.classifier import ClassifierSettings

#: Fewer draws leave FD's covariances meaningless (the evaluate command's own minimum).
MIN_QUALITY_SAMPLES = 10
#: Keys of a GAN run's config the study sets for every run; train_overrides may not set them.
STUDY_KEYS = ("dataset.per_class", "seed", "resume", "paths.run_dir")
#: The node of a GAN run's config the study sets to its own domain classifier (`classifier.*`).
CLASSIFIER_NODE = "classifier"
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
    #: The arms trained for each size and seed (`arms=[...]`, keys of handwriting_gan.augment.arms.ARMS).
    arms: tuple[Arm, ...] = ARMS
    #: The augmenter of arms (f) and (g): a shipped name or a run folder (handwriting_gan.augmenter).
    augmenter: str | None = None
    #: How (b)'s classical augmentation is tuned; None: the `classical` transform as given.
    classical_search: Search | None = None

    @property
    def needs_gan(self) -> bool:
        """Some arm adds a GAN run's images: each size and seed trains, measures and exports a GAN."""
        return any(arm.needs_gan for arm in self.arms)

    @property
    def tunes_classical(self) -> bool:
        return self.classical_search is not None and any("classical" in arm.adds for arm in self.arms)

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
        resumed study may extend), the folder, the device and the arms (each arm's results stand alone,
        so a resumed study trains the arms it lacks)."""
        values = dataclasses.asdict(self)
        for key in ("per_class", "seeds", "out", "device", "arms"):
            values.pop(key)
        if self.augmenter is None:
            values.pop("augmenter")  # results of studies without one compare with those before it existed
        if self.classical_search is None:
            values.pop("classical_search")
        values["forwarded"] = list(self.forwarded)
        values["train_overrides"] = list(self.train_overrides)
        values["classifier"] = self.classifier.as_dict()
        values["arm_classifier"] = self.arm_classifier.as_dict()
        return json.loads(json.dumps(values))  # as results.json holds it: tuples as lists

    @property
    def runs(self) -> list[tuple[int, int]]:
        """(per_class, seed) of every GAN run, in the order they are made."""
        return [(size, seed) for size in self.per_class for seed in range(self.seeds)]

    def run_folder(self, per_class: int, seed: int) -> RunFolder:
        return RunFolder(self.out / RUNS_FOLDER / run_key(per_class, seed))


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
    arms = _check_arms(cfg.get("arms"))
    if groups["model"] is None:
        raise ConfigError("the model group is empty: name a model config, e.g. model=cgan_mlp (conf/model/).")
    augmenter = cfg.get("augmenter")
    if augmenter is not None:
        augmenter = str(augmenter)
    needing = [arm.title for arm in arms if arm.needs_augmenter]
    if needing and augmenter is None:
        raise ConfigError(
            f"arms {', '.join(needing)} need an augmenter: add augmenter=omniglot (the shipped one) or "
            f"augmenter=<run folder of model=dagan>."
        )
    if augmenter is not None:
        from handwriting_gan.augmenter import augmenter_file

        augmenter_file(augmenter)  # a missing run or file fails before any work
    search = cfg.get("classical_search")
    classical_search = None
    if search is not None:
        from handwriting_gan.augment.classical import Search

        classical_search = Search.from_mapping(OmegaConf.to_container(search))
    forwarded = tuple(
        str(o)
        for o in record.overrides.task
        if "." in override_key(str(o)) and override_key(str(o)).split(".")[0] in FORWARDED_NODES
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
    from handwriting_gan.metrics.classifier import ClassifierSettings, settings_for_steps

    classifier = ClassifierSettings.from_mapping(OmegaConf.to_container(cfg.classifier))
    arm_steps, arm_classifier = settings_for_steps(cfg.arm_classifier, classifier)
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
        arms=arms,
        augmenter=augmenter,
        classical_search=classical_search,
    )


def _check_arms(value) -> tuple[Arm, ...]:
    """`arms=[real,classical,...]` as arms, in the registry's order; null: every arm but the augmenter's."""
    if value is None:
        return tuple(arm for arm in ARMS if not arm.needs_augmenter)
    keys = [value] if isinstance(value, str) else value
    advice = f"name arms from {', '.join(BY_KEY)}, e.g. arms=[real,classical,augmenter,classical_augmenter]"
    if not isinstance(keys, ListConfig | list) or not len(keys) or not all(isinstance(k, str) for k in keys):
        raise ConfigError(f"arms={value} must be a list of arm names; {advice}.")
    unknown = [key for key in keys if key not in BY_KEY]
    if unknown or len(set(keys)) != len(keys):
        raise ConfigError(f"arms={list(keys)} names {unknown or 'an arm twice'}; {advice}.")
    return tuple(arm for arm in ARMS if arm.key in keys)


def override_key(override: str) -> str:
    """The key a command-line override sets: `trainer.max_epochs` of `+trainer.max_epochs=5`."""
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


def override_list(name: str, value, example: str) -> tuple[str, ...]:
    """`value`, a setting `name` that lists training overrides (key=value or ~key), as a tuple; a
    ConfigError with `example` for anything else."""
    if value is None:
        return ()
    if not isinstance(value, ListConfig | list) or not all(isinstance(o, str) for o in value):
        raise ConfigError(f"{name}={value} must be a list of training overrides, e.g. {example}.")
    for override in value:
        if "=" not in override and not override.startswith("~"):
            raise ConfigError(f"{name} holds {override!r}, which is not an override key=value.")
    return tuple(value)


def _check_train_overrides(value, gan_steps: int | None) -> tuple[str, ...]:
    overrides = override_list(
        "train_overrides", value, "train_overrides=[augment=diffaugment,trainer.max_epochs=300]"
    )
    for override in overrides:
        key = override_key(override)
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
        if key.split(".")[0] == CLASSIFIER_NODE:
            raise ConfigError(
                f"train_overrides holds {override}, but each run records the study's own domain "
                f"classifier: change it with the study's classifier.* (e.g. classifier.feature_dim=64)."
            )
        if key == "trainer.max_epochs" and gan_steps is not None:
            raise ConfigError(
                f"train_overrides holds {override} while gan_steps={gan_steps} sets each run's length; "
                f"pass gan_steps=null to train for trainer.max_epochs epochs instead."
            )
    return overrides
