"""The typed schema of the training config, and the range checks of the keys no `_target_` owns.

Hydra merges `conf/train.yaml` onto `TrainSchema`, so a value of the wrong type (`seed=abc`) fails at
composition. `validate(cfg)` then checks the top-level keys and the trainer's, and raises one
`ConfigError` naming the key, the value and what is allowed. Everything built from a `_target_` (the
dataset, the model's networks and game, the callbacks) checks its own arguments in its constructor;
the training command constructs each once before a run folder is made (handwriting_gan.train).
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
    init_from: str | None = None
    threads: Any = "auto"
    optimized_metric: str | None = None
    dataset: Any = MISSING
    model: Any = MISSING
    trainer: Any = MISSING
    callbacks: Any = MISSING
    logger: Any = MISSING
    paths: Any = MISSING
    classifier: Any = MISSING
    augment: Any = None


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


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError for the first out-of-range value among the keys no constructor checks."""
    lr = cfg.optim.lr
    if not lr > 0:
        _fail("optim.lr", lr, "expected a positive learning rate, e.g. 2e-4")
    betas = cfg.optim.betas
    if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
        _fail("optim.betas", betas, "expected two numbers in [0, 1), e.g. [0.5,0.999]")
    if cfg.threads != "auto":
        _optional_positive_int(cfg, "threads")
    _positive_int(cfg, "trainer.max_epochs", allow=(-1,))
    accelerator = cfg.trainer.get("accelerator", "auto")
    if accelerator not in ACCELERATORS:
        _fail("trainer.accelerator", accelerator, f"expected one of {', '.join(ACCELERATORS)}")
