"""The expand command's plan: conf/expand.yaml (from the command line, or expand_folder's arguments merged
into it) checked before anything is read or written."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from handwriting_gan.data.exports import check_format
from handwriting_gan.errors import ConfigError, DataError
from handwriting_gan.shell import check_count, choose_device

if TYPE_CHECKING:
    from handwriting_gan.augment.classical import Search
    from handwriting_gan.data.folder import FolderDataModule
    from handwriting_gan.metrics.classifier import ClassifierSettings

CONFIG_NAME = "expand"
#: Without per_class, each class grows to this many times its real images.
DEFAULT_FACTOR = 10
#: The measurement holds out at least one image of each class and trains on at least three (the tuning
#: of (b) validates on one of them).
MIN_HELD_OUT, MIN_TRAIN = 1, 3
MIN_MEASURED = MIN_HELD_OUT + MIN_TRAIN
#: Who may label a pool (`pool_labels`).
POOL_LABELLERS = ("gan", "gan_self_training", "self_training")
#: The folder dataset's preprocessing keys the command passes on (conf/dataset/folder.yaml).
DATASET_KEYS = ("ink", "ink_threshold", "fit_size", "image_size", "strict")


@dataclass(frozen=True)
class Plan:
    """What to expand, where to, and how to measure it; every value checked."""

    path: Path
    out: Path
    overwrite: bool
    per_class: int | None
    format: str
    augmenter: str
    seed: int
    dataset: dict[str, Any]
    cache_dir: Path
    #: "auto", True or False.
    measure: str | bool
    seeds: int
    held_out_fraction: float
    #: The measurement's classifier recipe (the classifier group with arm_classifier's changes) and steps.
    classifier: ClassifierSettings
    steps: int
    search: Search
    shown_real: int
    shown_variations: int
    batch_size: int
    device: str
    threads: int | str | None
    #: A folder of unlabelled images, labelled by the semi-supervised GAN (None: the augmenter expands).
    unlabeled: Path | None = None
    min_confidence: float = 0.0
    pool_gan: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: Who labels the pool: "self_training" or "gan" (the semi-supervised GAN).
    pool_labels: str = "self_training"
    #: With a pool: the augmenter's variations of each labelled and kept pool image added to `out`.
    pool_variations: int = 0

    @property
    def work(self) -> Path:
        """Where the finished steps are kept until `out` is complete: `<out>.partial/` beside it."""
        return self.out.parent / f"{self.out.name}.partial"

    @property
    def image_shape(self) -> tuple[int, int, int]:
        size = int(self.dataset["image_size"])
        return (1, size, size)

    def datamodule(self, held_out: float = 0.0, seed: int = 0) -> FolderDataModule:
        """The folder as the folder dataset reads it, every image in its training split (the augmenter's
        measurement draws its own held-out parts), or with `held_out` of each class as its test split,
        drawn by `seed` (the pool's measurement, whose GAN must not see them either)."""
        from handwriting_gan.data.folder import FolderDataModule

        return FolderDataModule(
            path=str(self.path),
            cache_dir=str(self.cache_dir),
            unlabeled=None if self.unlabeled is None else str(self.unlabeled),
            test_fraction=held_out,
            batch_size=64,
            sample_grid=8,
            seed=seed,
            **self.dataset,
        )

    def targets(self, counts: list[int], class_names: tuple[str, ...]) -> list[int]:
        """Images of each class in the expanded dataset; ConfigError when per_class is below a class's
        real count (the expansion keeps every real image)."""
        if self.per_class is None:
            return [DEFAULT_FACTOR * count for count in counts]
        over = [
            (name, count) for name, count in zip(class_names, counts, strict=True) if count > self.per_class
        ]
        if over:
            most = max(count for _, count in over)
            (name, count), more = over[0], f" (and of {len(over) - 1} more classes)" if len(over) > 1 else ""
            raise ConfigError(
                f"per_class={self.per_class} is below the {count} real images of class {name!r}{more}; the "
                f"expanded dataset keeps every real image, so use per_class={most} or more, or leave it "
                f"null for 10 x each class."
            )
        return [self.per_class] * len(counts)

    def measures(self, counts: list[int], class_names: tuple[str, ...]) -> bool:
        """Whether to measure: measure=true or false as given, auto when every class has MIN_MEASURED
        images; ConfigError for measure=true with a smaller class."""
        small = [
            (name, count) for name, count in zip(class_names, counts, strict=True) if count < MIN_MEASURED
        ]
        if self.measure is False or (self.measure == "auto" and small):
            return False
        if small:
            named = ", ".join(f"{name!r} ({count})" for name, count in small[:5])
            raise ConfigError(
                f"measure=true needs at least {MIN_MEASURED} usable images of every class ({MIN_HELD_OUT} "
                f"held out, {MIN_TRAIN} to train on), but {len(small)} classes have fewer: {named}. Add "
                f"images to them, or pass measure=false to expand without measuring."
            )
        return True

    def identity(self) -> dict[str, Any]:
        """What the stored steps depend on: a work folder of other values cannot be continued. Not the
        format, overwrite, device or threads: the stored steps are the same whatever they are."""
        return {
            "path": str(self.path.resolve()),
            "per_class": self.per_class,
            "augmenter": self.augmenter,
            "seed": self.seed,
            "dataset": dict(self.dataset),
            "measure": self.measure,
            "seeds": self.seeds,
            "held_out_fraction": self.held_out_fraction,
            "classifier": self.classifier.as_dict(),
            "steps": self.steps,
            "classical_search": dataclasses.asdict(self.search),
            "unlabeled": None if self.unlabeled is None else str(self.unlabeled.resolve()),
            "pool_gan": dict(self.pool_gan),
            "pool_labels": self.pool_labels,
        }


def expand_config(values: Mapping[str, Any] | None = None) -> DictConfig:
    """conf/expand.yaml with `values` merged in (nested mappings change only the keys they name), as the
    command line would set them; ConfigError for a key the config does not have."""
    from handwriting_gan.config import compose_config

    cfg = compose_config([], config_name=CONFIG_NAME)
    try:
        return OmegaConf.merge(cfg, OmegaConf.create(dict(values or {})))
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None) or str(error).splitlines()[0]
        raise ConfigError(
            f"{key} is not a setting of the expand command; its settings are the keys of conf/expand.yaml "
            f"({', '.join(str(k) for k in cfg if k not in ('paths', 'hydra'))})."
        ) from None


def check_plan(cfg: DictConfig) -> Plan:
    """The plan of `cfg` (conf/expand.yaml); raises ConfigError or DataError naming the first mistake."""
    from handwriting_gan.augment.classical import Search
    from handwriting_gan.metrics.classifier import ClassifierSettings, settings_for_steps

    path = _folder(cfg.path)
    out = _out(cfg.out, path)
    fmt = check_format(cfg.format)
    augmenter = cfg.augmenter
    if not isinstance(augmenter, str) or not augmenter.strip():
        raise ConfigError(
            f"augmenter={augmenter} must name an augmenter: omniglot (shipped), or a run folder of "
            f"model=dagan."
        )
    measure = cfg.measure
    if not (measure == "auto" or isinstance(measure, bool)):
        raise ConfigError(f"measure={measure} must be auto (when every class has 4 images), true or false.")
    fraction = cfg.held_out_fraction
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction < 1:
        raise ConfigError(
            f"held_out_fraction={fraction} must be in (0, 1), e.g. 0.25: the part of each class the "
            f"measurement tests on."
        )
    base = ClassifierSettings.from_mapping(OmegaConf.to_container(cfg.classifier))
    steps, classifier = settings_for_steps(cfg.arm_classifier, base)
    search = Search.from_mapping(OmegaConf.to_container(cfg.classical_search))
    dataset = {key: cfg.dataset[key] for key in DATASET_KEYS}
    unknown = sorted(set(cfg.dataset) - set(DATASET_KEYS))
    if unknown:
        raise ConfigError(
            f"dataset.{unknown[0]} is not a preprocessing key; they are {', '.join(DATASET_KEYS)}."
        )
    if not isinstance(cfg.overwrite, bool):
        raise ConfigError(f"overwrite={cfg.overwrite} must be true or false.")
    unlabeled = None if cfg.unlabeled is None else _pool(cfg.unlabeled, path)
    min_confidence = cfg.min_confidence
    if (
        isinstance(min_confidence, bool)
        or not isinstance(min_confidence, int | float)
        or not 0 <= min_confidence < 1
    ):
        raise ConfigError(
            f"min_confidence={min_confidence} must be in [0, 1): pool images labelled with a lower "
            f"confidence are left out (0 keeps all)."
        )
    pool_gan = OmegaConf.to_container(cfg.pool_gan)
    decay = pool_gan.get("lr_decay_fraction")
    if isinstance(decay, bool) or not isinstance(decay, int | float) or not 0 <= decay <= 1:
        raise ConfigError(f"pool_gan.lr_decay_fraction={decay} must be in [0, 1], e.g. 0.2.")
    pool_gan = {
        "batches": check_count("pool_gan.batches", pool_gan.get("batches"), 1),
        "batch_size": check_count("pool_gan.batch_size", pool_gan.get("batch_size"), 1),
        "lr_decay_fraction": float(decay),
    }
    if cfg.pool_labels not in POOL_LABELLERS:
        raise ConfigError(
            f"pool_labels={cfg.pool_labels} is not allowed: expected one of {', '.join(POOL_LABELLERS)}."
        )
    plan = Plan(
        path=path,
        out=out,
        overwrite=cfg.overwrite,
        per_class=None if cfg.per_class is None else _per_class(cfg.per_class),
        format=fmt,
        augmenter=augmenter.strip(),
        seed=check_count("seed", cfg.seed, 0),
        dataset=dataset,
        cache_dir=Path(str(cfg.paths.cache_dir)).expanduser(),
        measure=measure,
        seeds=check_count("seeds", cfg.seeds, 1),
        held_out_fraction=float(fraction),
        classifier=classifier,
        steps=steps,
        search=search,
        shown_real=check_count("samples.real", cfg.samples.real, 1),
        shown_variations=check_count("samples.variations", cfg.samples.variations, 0),
        batch_size=check_count("batch_size", cfg.batch_size, 1),
        device=choose_device(cfg.device),
        threads=cfg.threads,
        unlabeled=unlabeled,
        min_confidence=float(min_confidence),
        pool_gan=pool_gan,
        pool_labels=str(cfg.pool_labels),
        pool_variations=check_count("pool_variations", cfg.pool_variations, 0),
    )
    plan.datamodule()  # its constructor checks the preprocessing keys, reading nothing
    return plan


def _folder(value) -> Path:
    if value is None or not str(value).strip():
        raise ConfigError(
            "path=<folder> is required: your images, one sub-folder per class, e.g. python -m "
            "handwriting_gan.expand path=~/letters out=~/letters_x10 (holding ~/letters/a/*.png, ...)."
        )
    path = Path(str(value)).expanduser()
    if not path.exists():
        raise DataError(
            f"path={value} does not exist (looked for {path.resolve()}); point it at your folder."
        )
    if not path.is_dir():
        raise DataError(
            f"path={value} is a file, not a folder; point it at a folder with one sub-folder of images per "
            f"class (unpack an archive first)."
        )
    return path


def _pool(value, path: Path) -> Path:
    """The unlabelled folder, checked to be a folder other than the labelled one (its images are read when
    the pool is converted: an empty one or one with no usable image is refused then, before any file is
    written)."""
    if not str(value).strip():
        raise ConfigError("unlabeled= is empty: name a folder of unlabelled images, or leave it out.")
    pool = Path(str(value)).expanduser()
    if not pool.exists():
        raise DataError(f"unlabeled={value} does not exist (looked for {pool.resolve()}).")
    if not pool.is_dir():
        raise DataError(f"unlabeled={value} is a file, not a folder of images (unpack an archive first).")
    if pool.resolve() == path.resolve():
        raise ConfigError(f"unlabeled={value} is the labelled folder itself; name a folder of other images.")
    return pool


def _out(value, path: Path) -> Path:
    if value is None or not str(value).strip():
        raise ConfigError(
            f"out=<new folder> is required: where the expanded dataset goes, e.g. out={path.name}_expanded."
        )
    out = Path(str(value)).expanduser()
    resolved, source = out.resolve(), path.resolve()
    if resolved == source or source in resolved.parents:
        raise ConfigError(
            f"out={value} is inside path={path}, which is only read (its class folders would gain one); "
            f"choose an out outside it."
        )
    if resolved in source.parents:
        raise ConfigError(
            f"out={value} holds path={path}; choose a new folder outside it, e.g. out={path.name}_expanded."
        )
    if out.name in ("", ".", ".."):
        raise ConfigError(f"out={value} must name a new folder, e.g. out={path.name}_expanded.")
    return out


def _per_class(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            f"per_class={value} must be a positive number of images per class (at least each class's "
            f"real count), or null for 10 x each class."
        )
    return value
