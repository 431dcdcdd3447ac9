"""How a training config becomes the objects of a run: the datamodule, the game (the model group's
LightningModule), the callbacks, the logger and the trainer.

The training command builds its run here; `construct` builds each object once from settings alone, so
that every constructor's checks run before a run folder exists (the training command, and the study for
the GAN runs it will start); tests and benchmarks build a run without the command line.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from handwriting_gan.errors import ConfigError, DataError

#: `num_classes: auto` in a model config: the dataset's number of classes, known once it is loaded.
AUTO = "auto"

log = logging.getLogger(__name__)


def construct(cfg: DictConfig, run_dir: str | Path) -> None:
    """Build the dataset (settings only, no data read), the game and the callbacks of `cfg` once, so
    every constructor's checks run before a run folder exists."""
    from handwriting_gan.config import instantiate

    check_accelerator(cfg)
    cfg = cfg.copy()
    OmegaConf.update(cfg, "paths.run_dir", str(Path(run_dir).resolve()))
    check_fits(build_game(cfg, num_classes=2), instantiate(cfg.dataset))  # 2: a stand-in for `auto`
    for callback in cfg.callbacks.values():
        if callback:
            instantiate(callback)


def check_accelerator(cfg: DictConfig) -> None:
    accelerator = str(cfg.trainer.get("accelerator", "cpu"))
    if accelerator in ("gpu", "cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                f"trainer.accelerator={accelerator} but no CUDA GPU is visible on this machine "
                f"(torch {torch.__version__}, cuda available: False). Use trainer=cpu, or run where "
                f"`python -c 'import torch; print(torch.cuda.is_available())'` prints True."
            )
    if cfg.model.get("cuda_graph") is True and accelerator not in ("gpu", "cuda"):
        raise ConfigError(
            f"model.cuda_graph=true records CUDA graphs and needs a GPU, but "
            f"trainer.accelerator={accelerator}. Use trainer=gpu, or leave model.cuda_graph=false on the CPU."
        )


def cpu_has_bf16() -> bool | None:
    """Whether this x86 CPU computes in bfloat16 natively (AVX-512 BF16 or AMX), as torch's own CPU
    detection says; None where torch cannot tell (other architectures, other torch versions)."""
    import torch

    checks = [
        getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    ]
    if not torch.backends.cpu.get_cpu_capability().startswith("AVX") or None in checks:
        return None
    return any(check() for check in checks)


def warn_emulated_bf16(cfg: DictConfig) -> None:
    """bf16 precision on a CPU without bfloat16 instructions runs, emulated, several times slower than
    32-true: say so before the run is under way."""
    precision = str(cfg.trainer.get("precision", "32-true"))
    if (
        precision.startswith("bf16")
        and str(cfg.trainer.get("accelerator", "cpu")) == "cpu"
        and cpu_has_bf16() is False
    ):
        log.warning(
            "trainer.precision=%s on a CPU without bfloat16 instructions (no AVX-512 BF16 or AMX): torch "
            "emulates them, and the study's MLP step ran 12x slower than with 32-true on such a CPU "
            "(docs/results/throughput.md). Use trainer.precision=32-true here.",
            precision,
        )


def build(cfg: DictConfig, resume_step: int | None = None):
    """(trainer, game, datamodule) of `cfg`, with the data loaded.

    `resume_step` (the logging step of the checkpoint resumed from) hides TensorBoard events a killed
    run wrote after its checkpoint, so the resumed run's steps are not duplicated.
    """
    from lightning.pytorch.callbacks import ProgressBar

    from handwriting_gan.config import instantiate

    warn_emulated_bf16(cfg)
    datamodule = instantiate(cfg.dataset)
    datamodule.setup("fit")  # data mistakes (missing files, per_class too large) surface before any file
    game = build_game(cfg, datamodule.num_classes)
    check_fits(game, datamodule)
    # An image-conditional augmenter trains on pairs of images of one class.
    datamodule.pairs = bool(getattr(game, "trains_on_pairs", False))
    callbacks = [instantiate(callback) for callback in cfg.callbacks.values() if callback]
    if not cfg.trainer.get("enable_progress_bar", True):
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    logger = (
        instantiate(cfg.logger) if resume_step is None else instantiate(cfg.logger, purge_step=resume_step)
    )
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=logger)
    logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return trainer, game, datamodule


def build_game(cfg: DictConfig, num_classes: int):
    """The model group's LightningModule, with `num_classes: auto` resolved to the dataset's classes."""
    from handwriting_gan.config import instantiate

    if cfg.model.generator.get("num_classes") == AUTO:
        if num_classes < 2:
            raise DataError(
                f"model={cfg.model.generator._target_} is class-conditional but the dataset has "
                f"{num_classes} class; a conditional GAN needs at least two. Use an unconditional model "
                f"(e.g. model=mlp3) or add classes."
            )
        OmegaConf.update(cfg, "model.generator.num_classes", num_classes)
    if cfg.model.discriminator.get("num_labels") == AUTO:  # a discriminator that classifies
        OmegaConf.update(cfg, "model.discriminator.num_labels", num_classes)
    return instantiate(cfg.model)


def check_fits(game, datamodule) -> None:
    """The model's images must be the dataset's; a semi-supervised game needs labelled and unlabelled
    images, and only it can use them."""
    semi_game = bool(getattr(game, "trains_semi_supervised", False))
    if semi_game and not datamodule.semi_supervised:
        raise ConfigError(
            "the semi-supervised GAN trains on labelled and unlabelled images: hide labels with "
            "dataset.labels_per_class=<K> (e.g. 10), or give dataset=folder a pool with "
            "dataset.unlabeled=<folder>."
        )
    if datamodule.semi_supervised and not semi_game:
        raise ConfigError(
            "dataset.labels_per_class / dataset.unlabeled give labelled and unlabelled images, which only "
            "the semi-supervised GAN uses: add model=ssgan_mlp, or leave them null."
        )
    if tuple(game.generator.image_shape) != tuple(datamodule.image_shape):
        raise ConfigError(
            f"model.generator.image_shape={list(game.generator.image_shape)} must match "
            f"dataset.image_shape={list(datamodule.image_shape)}; leave it as ${{dataset.image_shape}}."
        )
