"""The training command: compose the Hydra config, build data, game, callbacks and trainer, and fit.

`python -m handwriting_gan [overrides]` runs `main()`. A run folder receives `.hydra/`,
`tensorboard/`, `checkpoints/last.ckpt`, `figures/` and, when training ends, `generator.pt`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ProgressBar
from omegaconf import DictConfig, OmegaConf

from handwriting_gan.config import CONFIG_DIR
from handwriting_gan.errors import CheckpointError, ConfigError, UserError
from handwriting_gan.models.generator_file import save_generator

LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"


def check_run_dir(run_dir: Path) -> None:
    """Raise unless `run_dir` is a run folder that can be resumed."""
    if not (run_dir / ".hydra" / "overrides.yaml").is_file():
        raise CheckpointError(
            f"resume={run_dir} is not a run folder: it has no .hydra/overrides.yaml. Pass a folder "
            f"made by `python -m handwriting_gan`, e.g. outputs/default/<timestamp>."
        )
    if not (run_dir / LAST_CHECKPOINT).is_file():
        raise CheckpointError(
            f"resume={run_dir} has no {LAST_CHECKPOINT} to continue from (the run ended before its "
            f"first epoch finished); start a new run instead."
        )


def resume_arguments(argv: list[str]) -> list[str]:
    """Rewrite `resume=<run>` command lines so Hydra recomposes that run's config in that folder.

    The run's own overrides come first, then this command's (e.g. a larger trainer.max_epochs).
    Hydra writes nothing new into the folder's `.hydra/`, so the original record stays intact.
    """
    resume = [arg for arg in argv if arg.startswith("resume=")]
    if not resume:
        return argv
    run_dir = Path(resume[-1].split("=", 1)[1]).expanduser()
    check_run_dir(run_dir)
    original = OmegaConf.load(run_dir / ".hydra" / "overrides.yaml")
    original = [o for o in original if not str(o).startswith("resume=")]
    given = [arg for arg in argv if not arg.startswith("resume=")]
    return [
        *original,
        *given,
        f"resume={run_dir.resolve()}",
        f"hydra.run.dir={run_dir.resolve()}",
        "hydra.output_subdir=null",
    ]


def check_accelerator(cfg: DictConfig) -> None:
    accelerator = str(cfg.trainer.get("accelerator", "cpu"))
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"trainer.accelerator={accelerator} but no CUDA GPU is visible on this machine "
            f"(torch {torch.__version__}, cuda available: False). Use trainer=cpu, or run where "
            f"`python -c 'import torch; print(torch.cuda.is_available())'` prints True."
        )


def build(cfg: DictConfig) -> tuple[L.Trainer, L.LightningModule, L.LightningDataModule]:
    """Instantiate the datamodule, the game, the callbacks, the logger and the trainer of `cfg`."""
    datamodule = instantiate(cfg.dataset)
    game = instantiate(cfg.game)
    callbacks = [instantiate(callback) for callback in cfg.callbacks.values() if callback]
    if not cfg.trainer.get("enable_progress_bar", True):
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    logger = instantiate(cfg.logger)
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=logger)
    logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return trainer, game, datamodule


def train(cfg: DictConfig) -> float | None:
    """Fit the GAN described by `cfg` and return `cfg.optimized_metric` for Hydra sweepers."""
    if cfg.threads is not None:
        torch.set_num_threads(int(cfg.threads))
    check_accelerator(cfg)
    run_dir = Path(cfg.paths.run_dir)
    checkpoint = None
    if cfg.resume:
        checkpoint = Path(cfg.resume) / LAST_CHECKPOINT
    elif (run_dir / LAST_CHECKPOINT).exists():
        raise CheckpointError(
            f"{run_dir} already holds a run; pass resume={run_dir} to continue it, or choose "
            f"another hydra.run.dir."
        )
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    trainer, game, datamodule = build(cfg)
    trainer.fit(game, datamodule=datamodule, ckpt_path=checkpoint)

    if trainer.is_global_zero:
        save_generator(run_dir / "generator.pt", game.generator, cfg.model.generator, datamodule.class_names)
    metric = trainer.callback_metrics.get(cfg.optimized_metric)
    return float(metric) if metric is not None else None


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    try:
        return train(cfg)
    except UserError as error:
        _exit_with(error, HydraConfig.get().runtime.output_dir)


def _exit_with(error: UserError, where: str | None = None) -> None:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(error.exit_code)


def main() -> None:
    try:
        sys.argv = [sys.argv[0], *resume_arguments(sys.argv[1:])]
    except UserError as error:
        _exit_with(error)
    _hydra_main()


if __name__ == "__main__":
    main()
