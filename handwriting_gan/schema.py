"""The typed schema of the training config and the checks that run before any work starts.

Hydra merges `conf/train.yaml` onto `TrainSchema`, so a value of the wrong type (`seed=abc`) fails at
composition. `validate(cfg)` then checks ranges and consistency (sizes, rates, widths, grid sizes,
image shapes) and raises one `ConfigError` naming the key, the value and what is allowed. It reads
the config only: no torch, no data, so a mistake costs well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from handwriting_gan.errors import ConfigError

ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "tpu", "auto")


@dataclass
class OptimSchema:
    lr: float = 2e-4
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])


@dataclass
class TrainSchema:
    name: str = "default"
    seed: int = 42
    d_steps: int = 1
    optim: OptimSchema = field(default_factory=OptimSchema)
    resume: str | None = None
    threads: int | None = None
    optimized_metric: str | None = None
    dataset: Any = MISSING
    model: Any = MISSING
    trainer: Any = MISSING
    callbacks: Any = MISSING
    logger: Any = MISSING
    paths: Any = MISSING
    game: Any = MISSING


ConfigStore.instance().store(name="train_schema", node=TrainSchema)


def _fail(key: str, value: Any, allowed: str) -> None:
    if isinstance(value, DictConfig | ListConfig):
        value = OmegaConf.to_container(value)
    raise ConfigError(f"{key}={value} is not allowed: {allowed}.")


def _positive_int(cfg: DictConfig, key: str, allow: tuple[int, ...] = ()) -> None:
    value = OmegaConf.select(cfg, key)
    if value in allow:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        extra = f" (or {', '.join(map(str, allow))})" if allow else ""
        _fail(key, value, f"expected a positive integer{extra}")


def _optional_positive_int(cfg: DictConfig, key: str) -> None:
    if OmegaConf.select(cfg, key) is not None:
        _positive_int(cfg, key)


def _widths(cfg: DictConfig, key: str) -> None:
    value = OmegaConf.select(cfg, key)
    if value is None:
        return
    if (
        not isinstance(value, ListConfig | list)
        or not value
        or any(isinstance(w, bool) or not isinstance(w, int) or w <= 0 for w in value)
    ):
        _fail(key, value, "expected a non-empty list of positive layer widths, e.g. [256,512,1024]")


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError for the first out-of-range or inconsistent value of a training config."""
    _positive_int(cfg, "d_steps")
    lr = cfg.optim.lr
    if not lr > 0:
        _fail("optim.lr", lr, "expected a positive learning rate, e.g. 2e-4")
    betas = cfg.optim.betas
    if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
        _fail("optim.betas", betas, "expected two numbers in [0, 1), e.g. [0.5,0.999]")
    _optional_positive_int(cfg, "threads")

    _positive_int(cfg, "dataset.batch_size")
    _positive_int(cfg, "dataset.sample_grid")
    _optional_positive_int(cfg, "dataset.per_class")
    shape = cfg.dataset.get("image_shape")
    if shape is None or len(shape) != 3 or any(not isinstance(s, int) or s <= 0 for s in shape):
        _fail("dataset.image_shape", shape, "expected three positive sizes [C,H,W], e.g. [1,28,28]")

    _positive_int(cfg, "model.latent_dim")
    for player in ("generator", "discriminator"):
        _widths(cfg, f"model.{player}.hidden")
        model_shape = OmegaConf.select(cfg, f"model.{player}.image_shape")
        if model_shape is not None and list(model_shape) != list(shape):
            _fail(
                f"model.{player}.image_shape",
                model_shape,
                f"the {player}'s input/output layer must match dataset.image_shape={list(shape)}; "
                f"leave it as ${{dataset.image_shape}}",
            )
    dropout = OmegaConf.select(cfg, "model.discriminator.dropout")
    if dropout is not None and not 0.0 <= dropout < 1.0:
        _fail("model.discriminator.dropout", dropout, "expected a probability in [0, 1)")

    _positive_int(cfg, "trainer.max_epochs", allow=(-1,))
    accelerator = cfg.trainer.get("accelerator", "auto")
    if accelerator not in ACCELERATORS:
        _fail("trainer.accelerator", accelerator, f"expected one of {', '.join(ACCELERATORS)}")
    if OmegaConf.select(cfg, "callbacks.samples") is not None:
        _optional_positive_int(cfg, "callbacks.samples.nrow")
    if OmegaConf.select(cfg, "callbacks.checkpoint") is not None:
        _positive_int(cfg, "callbacks.checkpoint.every_n_epochs")
        _optional_positive_int(cfg, "callbacks.checkpoint.every_n_batches")
