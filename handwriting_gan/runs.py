"""The run folder: its layout, the checks "is a run", "is finished", "already holds a run", claiming a
new one, and reading back what a run left (its config and the domain classifier it records, its
checkpoint, its generator and dataset).

Training, resume, evaluate, export and the notebooks use this module and nothing else to find files.

    <run>/.hydra/{config,overrides,hydra}.yaml   the composed config and the command-line overrides
    <run>/tensorboard/                          event files
    <run>/checkpoints/last.ckpt                  the full training state (atomic replace)
    <run>/figures/                               sample grids, loss figure, progress GIF, real samples
    <run>/generator.pt                           written when training ends: the run is finished
    <run>/metrics.json                           written by the evaluate command
    <run>/export/                                the export command's default output
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from handwriting_gan.errors import CheckpointError, ConfigError

if TYPE_CHECKING:  # torch and Lightning load only where a run's contents are read
    import lightning as L
    from torch import nn

    from handwriting_gan.metrics.classifier import ClassifierSettings

log = logging.getLogger(__name__)

#: What Hydra writes into a run folder before the run itself starts.
HYDRA_RECORD = frozenset({".hydra", "train.log"})


@dataclass(frozen=True)
class RunFolder:
    """The files of one run folder (which need not exist yet)."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path).expanduser())

    @property
    def hydra_dir(self) -> Path:
        return self.path / ".hydra"

    @property
    def config_file(self) -> Path:
        return self.hydra_dir / "config.yaml"

    @property
    def overrides_file(self) -> Path:
        return self.hydra_dir / "overrides.yaml"

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoints" / "last.ckpt"

    @property
    def checkpoint_dir(self) -> Path:
        return self.checkpoint.parent

    @property
    def generator_file(self) -> Path:
        return self.path / "generator.pt"

    @property
    def classifier_file(self) -> Path:
        """The discriminator as a classifier (models/classifier_file.py): runs whose D names classes."""
        return self.path / "classifier.pt"

    @property
    def figures_dir(self) -> Path:
        return self.path / "figures"

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / "tensorboard"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.json"

    @property
    def export_dir(self) -> Path:
        return self.path / "export"

    # -- checks -------------------------------------------------------------------------------
    def is_run(self) -> bool:
        """Made by the training command (it has its config record)."""
        return self.config_file.is_file()

    def is_finished(self) -> bool:
        """Training ended and left `generator.pt`."""
        return self.is_run() and self.generator_file.is_file()

    def holds_run(self) -> bool:
        """Training has started here (a checkpoint or a generator exists): never start another run in it."""
        return self.checkpoint.exists() or self.generator_file.exists()

    def is_unstarted(self) -> bool:
        """Holds nothing but Hydra's record of a run that failed before it started."""
        return self.path.is_dir() and all(p.name in HYDRA_RECORD for p in self.path.iterdir())

    def require_resumable(self) -> None:
        """Raise unless training can continue from this folder."""
        self.require_run("resume")
        if not self.overrides_file.is_file():
            raise CheckpointError(
                f"resume={self.path} is not a run folder: it has no .hydra/overrides.yaml. Pass a folder "
                f"made by `python -m handwriting_gan`, e.g. outputs/default/<timestamp>."
            )
        if not self.checkpoint.is_file():
            raise CheckpointError(
                f"resume={self.path} has no checkpoints/last.ckpt to continue from (the run ended before "
                f"its first epoch finished); start a new run instead."
            )

    def require_new(self) -> None:
        """Raise if a run already started here."""
        if self.holds_run():
            raise CheckpointError(
                f"{self.path} already holds a run; pass resume={self.path} to continue it, or choose "
                f"another hydra.run.dir."
            )

    def require_run(self, key: str) -> None:
        """Raise CheckpointError unless this folder exists and was made by the training command; `key` is
        the option that named it (run_dir, resume, init_from): every command has this one rule and exit
        code for a run folder it cannot use."""
        if not self.path.is_dir():
            raise CheckpointError(
                f"{key}={self.path} does not exist; pass a run folder such as outputs/<name>/<time>."
            )
        if not self.is_run():
            raise CheckpointError(
                f"{key}={self.path} is not a run folder: it has no .hydra/config.yaml. Pass a folder "
                f"made by `python -m handwriting_gan`, e.g. outputs/default/<timestamp>."
            )

    def require_finished(self) -> None:
        """Raise unless this is a run folder whose training ended (for evaluate and export)."""
        self.require_run("run_dir")
        if not self.generator_file.is_file():
            raise CheckpointError(
                f"run_dir={self.path} has no generator.pt: the run has not finished (it is written when "
                f"training ends). Let it finish, or continue it with "
                f"`python -m handwriting_gan resume={self.path}`."
            )

    # -- reading back -------------------------------------------------------------------------
    def overrides(self) -> list[str]:
        """The command-line overrides the run was started with (minus any resume=)."""
        return [str(o) for o in OmegaConf.load(self.overrides_file) if not str(o).startswith("resume=")]

    def load_config(self, data_dir: str | Path | None = None) -> DictConfig:
        """The run's composed config, with paths.run_dir pointing at this folder (wherever it now is)."""
        cfg = OmegaConf.load(self.config_file)
        cfg.paths.run_dir = str(self.path)
        if data_dir is not None:
            cfg.paths.data_dir = str(data_dir)
        return cfg

    def domain_classifier(self) -> ClassifierSettings | None:
        """The domain classifier this run's config records (its `classifier` group: the one its training
        used, or the one the command that started it chose), or None for a folder that is not a run or a
        config without one."""
        from handwriting_gan.metrics.classifier import ClassifierSettings

        if not self.is_run():
            return None
        recorded = self.load_config().get("classifier")
        if not isinstance(recorded, Mapping):
            return None
        try:
            return ClassifierSettings.from_mapping(OmegaConf.to_container(recorded))
        except ConfigError as error:
            raise ConfigError(
                f"{self.config_file} records a classifier that cannot be used ({error}); pass classifier.* "
                f"to choose one."
            ) from None

    def read_checkpoint(self, module: L.LightningModule) -> dict:
        """`checkpoints/last.ckpt`, checked against `module` (see callbacks.checkpoint.read_checkpoint)."""
        from handwriting_gan.callbacks.checkpoint import read_checkpoint

        return read_checkpoint(self.checkpoint, module)

    def load_generator(
        self, data_dir: str | Path | None = None, cache_dir: str | Path | None = None
    ) -> tuple[nn.Module, dict[str, Any], L.LightningDataModule, str | Path]:
        """A finished run's generator (eval mode), the file's metadata, the run's dataset (rebuilt as the
        run saw it, from `data_dir` when given) and the cache folder to use (`cache_dir`, else the run's
        paths.cache_dir); raises CheckpointError when the run has not finished or its generator.pt
        does not belong to it."""
        from handwriting_gan.config import instantiate
        from handwriting_gan.models.generator_file import load_generator

        self.require_finished()
        cfg = self.load_config(data_dir)
        datamodule = instantiate(cfg.dataset)
        generator, metadata = load_generator(self.generator_file)
        if tuple(metadata["image_shape"]) != tuple(datamodule.image_shape):
            raise CheckpointError(
                f"{self.generator_file} makes {metadata['image_shape']} images but the run's dataset has "
                f"{list(datamodule.image_shape)}; the file does not belong to this run."
            )
        if cache_dir is None:
            cache_dir = OmegaConf.select(cfg, "paths.cache_dir", default="cache")
        return generator, metadata, datamodule, cache_dir


def classifier_for_run(
    run_dir: str | Path, configured: ClassifierSettings, chosen: bool
) -> ClassifierSettings:
    """The domain classifier `evaluate` and `export` use for the run `run_dir`: `configured` (the
    command's classifier group) when `chosen` (its command line set classifier.*), else the one the
    run's config records, so that a run is measured and labeled with the classifier it was made with
    and that classifier's cached copy is used instead of a new one being trained. Logs when it differs."""
    own = None if chosen else RunFolder(run_dir).domain_classifier()
    if own is None or own == configured:
        return configured
    log.info(
        "classifier: the one the config of %s records (its cached copy); pass classifier.* to use another",
        run_dir,
    )
    return own


def claim(path: str | Path) -> Path:
    """Create a new, empty run folder at `path`, or at `path_2`, `path_3`... when another run already
    took that name (runs started in the same second). Creation is atomic, so two processes never
    share a folder."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate, number = path, 1
    while True:
        try:
            os.mkdir(candidate)
            return candidate
        except FileExistsError:
            number += 1
            candidate = path.with_name(f"{path.name}_{number}")


def find_runs(root: str | Path = "outputs") -> Iterator[RunFolder]:
    """Every run folder under `root` (single runs and multirun jobs), oldest first by start time."""
    root = Path(root).expanduser()
    if not root.is_dir():
        return iter(())
    runs = [RunFolder(config.parent.parent) for config in root.rglob(".hydra/config.yaml")]
    return iter(sorted(runs, key=lambda run: run.config_file.stat().st_mtime))


def latest_finished_run(
    root: str | Path = "outputs", skip_names: tuple[str, ...] = ("debug",)
) -> RunFolder | None:
    """The newest finished run under `root`, leaving out run families named in `skip_names` (the
    seconds-long `debug=fast` smoke runs), or None."""
    finished = [run for run in find_runs(root) if run.is_finished() and _name(run) not in skip_names]
    return finished[-1] if finished else None


def _name(run: RunFolder) -> str:
    return str(OmegaConf.load(run.config_file).get("name", ""))
