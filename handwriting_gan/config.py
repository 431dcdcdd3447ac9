"""Where the Hydra configs live, and composing them outside the command line (tests, notebooks)."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import handwriting_gan.schema  # noqa: F401  (registers the typed schema train.yaml builds on)

CONFIG_DIR = Path(__file__).resolve().parent.parent / "conf"


def compose_config(overrides: list[str] = (), run_dir: str | Path | None = None) -> DictConfig:
    """Compose `conf/train.yaml` with `overrides`, as `python -m handwriting_gan` would.

    Outside a Hydra run there is no runtime output folder, so `run_dir` stands in for it.
    """
    overrides = list(overrides)
    if run_dir is not None:
        overrides.append(f"paths.run_dir={Path(run_dir).resolve()}")
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)
