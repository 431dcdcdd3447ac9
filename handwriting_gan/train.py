"""Training: build the datamodule, the game, the callbacks, the logger and the trainer, and fit.

`python -m handwriting_gan [overrides]` (handwriting_gan/cli.py) calls `train(cfg)`. A run folder
receives `.hydra/`, `tensorboard/`, `checkpoints/last.ckpt`, `figures/` and finally `generator.pt`.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ProgressBar
from omegaconf import DictConfig, OmegaConf

from handwriting_gan.callbacks.checkpoint import read_checkpoint
from handwriting_gan.cli import LAST_CHECKPOINT
from handwriting_gan.errors import CheckpointError, ConfigError
from handwriting_gan.models.generator_file import save_generator


def check_accelerator(cfg: DictConfig) -> None:
    accelerator = str(cfg.trainer.get("accelerator", "cpu"))
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"trainer.accelerator={accelerator} but no CUDA GPU is visible on this machine "
            f"(torch {torch.__version__}, cuda available: False). Use trainer=cpu, or run where "
            f"`python -c 'import torch; print(torch.cuda.is_available())'` prints True."
        )


def build(
    cfg: DictConfig, resume_step: int | None = None
) -> tuple[L.Trainer, L.LightningModule, L.LightningDataModule]:
    """Instantiate the datamodule, the game, the callbacks, the logger and the trainer of `cfg`.

    `resume_step` (the logging step of the checkpoint resumed from) hides TensorBoard events a killed
    run wrote after its checkpoint, so the resumed run's steps are not duplicated.
    """
    datamodule = instantiate(cfg.dataset)
    datamodule.setup("fit")  # data mistakes (missing files, per_class too large) surface before any file
    game = instantiate(cfg.game)
    callbacks = [instantiate(callback) for callback in cfg.callbacks.values() if callback]
    if not cfg.trainer.get("enable_progress_bar", True):
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    logger = (
        instantiate(cfg.logger) if resume_step is None else instantiate(cfg.logger, purge_step=resume_step)
    )
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=logger)
    logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return trainer, game, datamodule


def train(cfg: DictConfig) -> float | None:
    """Fit the GAN described by `cfg` and return `cfg.optimized_metric` for Hydra sweepers."""
    if cfg.threads is not None:
        torch.set_num_threads(int(cfg.threads))
    check_accelerator(cfg)
    run_dir = Path(cfg.paths.run_dir)
    checkpoint, resume_step = None, None
    if cfg.resume:
        checkpoint = Path(cfg.resume) / LAST_CHECKPOINT
        state = read_checkpoint(checkpoint, instantiate(cfg.game))
        resume_step = state["loops"]["fit_loop"]["epoch_loop.state_dict"]["_batches_that_stepped"]
    elif (run_dir / LAST_CHECKPOINT).exists():
        raise CheckpointError(
            f"{run_dir} already holds a run; pass resume={run_dir} to continue it, or choose "
            f"another hydra.run.dir."
        )
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    trainer, game, datamodule = build(cfg, resume_step)
    trainer.fit(game, datamodule=datamodule, ckpt_path=checkpoint)

    if trainer.is_global_zero:
        save_generator(run_dir / "generator.pt", game.generator, cfg.model.generator, datamodule.class_names)
    metric = trainer.callback_metrics.get(cfg.optimized_metric)
    return float(metric) if metric is not None else None
