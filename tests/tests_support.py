"""What test files share (importable because pyproject puts tests/ on pytest's pythonpath)."""

import os
import subprocess
import sys
import time
from pathlib import Path

import lightning as L

# Seconds-long runs: conf/debug/fast.yaml (tiny fake data, 2 epochs of 4 batches, no progress bar).
FAST = ["debug=fast"]
# A domain classifier that trains in under a second on the fake data.
TINY_CLASSIFIER = [
    "classifier.channels=[8,16]",
    "classifier.feature_dim=32",
    "classifier.batch_size=16",
    "classifier.min_steps=0",
]
# The augmentation study at toy size: one size and seed, GANs of 3 batches, 2 extra images per real
# one, classifiers of 10 steps (each GAN run costs three commands, each its own process).
TOY_STUDY = [
    "dataset=fake",
    "per_class=[4]",
    "seeds=1",
    "gan_steps=3",
    "expansion=2",
    "arm_classifier.steps=10",
    "classical_search.trials=2",
    "classical_search.steps=5",
    "quality.num_samples=40",
    "device=cpu",
    *TINY_CLASSIFIER,
]

# The semi-supervised GAN on a toy problem: 4 classes of the fake dataset, 3 labels per class (1 of them for
# validation), the rest of 320 images unlabelled; small networks, seconds per epoch.
TOY_SEMI = [
    "model=ssgan_mlp",
    "dataset=fake",
    "dataset.size=320",
    "dataset.num_classes=4",
    "dataset.batch_size=32",
    "dataset.labels_per_class=3",
    "dataset.labels_validation=1",
    "model.generator.hidden=[64,64]",
    "model.discriminator.hidden=[128,64]",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.log_every_n_steps=5",
]


class PauseAt(L.Callback):
    """A Lightning callback for kill tests: at (epoch, batch) it writes `marker` and sleeps, so a test
    can SIGKILL the process at a known point in the middle of an epoch."""

    def __init__(self, epoch: int, batch: int, marker: str, seconds: float = 120.0) -> None:
        self.epoch, self.batch, self.marker, self.seconds = epoch, batch, marker, seconds

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            Path(self.marker).write_text("paused")
            time.sleep(self.seconds)


def run_cli(args: list[str], cwd: Path, module: str = "handwriting_gan", timeout: int = 300, env=None):
    """Run `python -m <module> args` as a user would; returns the CompletedProcess (text)."""
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment,
    )


def train_in_process(overrides: list[str], run_dir: Path) -> Path:
    """Train a run in this process and leave its folder as the command line does (with Hydra's record
    of the config and overrides), without the seconds a process start costs."""
    from omegaconf import OmegaConf

    from handwriting_gan.config import compose_config
    from handwriting_gan.train import train

    cfg = compose_config(overrides, run_dir=run_dir)
    (run_dir / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create(list(overrides)), run_dir / ".hydra" / "overrides.yaml")
    train(cfg)
    return run_dir


def write_untrained_run(cfg, run_dir: Path) -> Path:
    """A run folder as training leaves it (config record and generator.pt), without the training."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from handwriting_gan.models.generator_file import save_generator

    (run_dir / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    save_generator(run_dir / "generator.pt", instantiate(cfg.model.generator), cfg.model.generator)
    return run_dir
