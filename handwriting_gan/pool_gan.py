"""The semi-supervised GAN of a labelled set and a pool (model=ssgan_mlp), trained in a run folder as the
expand command and the pool study both train it: its length in whole epochs, and one training that
continues from the run's checkpoint and keeps the discriminator as classifier.pt."""

from __future__ import annotations

import logging
import math
from pathlib import Path

#: The last part of the epochs lowers the learning rates towards 0 (model.lr_decay_epochs): it settles
#: the classifier that a run of a fixed length keeps.
LR_DECAY_FRACTION = 0.2
NAME = "semi-supervised GAN"


def gan_length(labelled: int, pool: int, batches: int, batch_size: int) -> tuple[int, int, int]:
    """(epochs, batches per epoch, batch size) of a GAN of about `batches` batches of `batch_size`
    labelled + `batch_size` pool images, in whole epochs of one pass over the larger of the two sets."""
    larger = max(labelled, pool)
    batch = min(batch_size, larger)
    per_epoch = larger // batch
    return max(1, math.ceil(batches / per_epoch)), per_epoch, batch


def run_overrides(
    epochs: int, batch: int, device: str, decay_fraction: float = LR_DECAY_FRACTION
) -> list[str]:
    """The training overrides of that length, its learning-rate decay, the accelerator of `device` (cpu,
    cuda or cuda:<index>), and a run started by a command: no bar (EpochLines says how far it is), no
    sample grids or loss figures (of no use to a labeller)."""
    return [
        "trainer.accelerator=" + ("gpu" if device.startswith("cuda") else "cpu"),
        f"dataset.batch_size={batch}",
        f"trainer.max_epochs={epochs}",
        f"model.lr_decay_epochs={round(decay_fraction * epochs)}",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "~callbacks.samples",
        "~callbacks.losses",
    ]


def train_pool_gan(overrides: list[str], run_dir: Path, seed: int) -> Path:
    """The GAN of the training `overrides`, trained in `run_dir` (continued from its checkpoint when one
    is there, skipped when its classifier.pt is); returns classifier.pt."""
    import lightning as L
    from omegaconf import OmegaConf

    from handwriting_gan.assembly import build
    from handwriting_gan.callbacks.epoch_lines import EpochLines
    from handwriting_gan.callbacks.preemption import Preemption
    from handwriting_gan.config import compose_config
    from handwriting_gan.files import atomic_path
    from handwriting_gan.models.classifier_file import save_classifier
    from handwriting_gan.runs import RunFolder

    run = RunFolder(run_dir)
    if run.classifier_file.is_file():
        return run.classifier_file
    cfg = compose_config(overrides, run_dir=run.path)
    resume = run.checkpoint.is_file()
    if not resume:
        run.hydra_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(run.config_file) as tmp:
            OmegaConf.save(cfg, tmp)
    L.seed_everything(seed, verbose=False)
    # Lightning's "GPU available" and "max_epochs reached" lines, and the datamodule's report of its
    # images, which the calling command has already given, are not repeated.
    quieted = {
        logging.getLogger("lightning.pytorch"): logging.WARNING,
        logging.getLogger("handwriting_gan.data"): logging.ERROR,
    }
    levels = {logger: logger.level for logger in quieted}
    try:
        for logger, level in quieted.items():
            logger.setLevel(level)
        trainer, game, datamodule = build(cfg)
        trainer.callbacks.append(EpochLines(NAME))
        for callback in trainer.callbacks:
            if isinstance(callback, Preemption):  # the run is the calling command's step, not a `resume=`
                callback.continue_with = "Run the same command again to continue from it."
        trainer.fit(game, datamodule=datamodule, ckpt_path=run.checkpoint if resume else None)
    finally:
        for logger, level in levels.items():
            logger.setLevel(level)
    save_classifier(run.classifier_file, game.classifier, cfg.model.discriminator, datamodule.class_names)
    return run.classifier_file
