"""Where the Hydra configs live (inside the package, so an installed wheel finds them from any
directory), and composing them outside the command line (tests, notebooks, the commands' checks)."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

import handwriting_gan.schema  # noqa: F401  (registers the typed schema train.yaml builds on)
from handwriting_gan.errors import ConfigError

CONFIG_MODULE = "handwriting_gan.conf"
CONFIG_PATH = f"pkg://{CONFIG_MODULE}"
#: How the files a group's options extend begin (model/_game.yaml, dataset/_common.yaml): no option.
SHARED_PREFIX = "_"


def group_options(group: str) -> list[str]:
    """The options of config group `group` (e.g. `model`) in the packaged configs: its YAML files, less
    the shared ones its options extend."""
    folder = resources.files(CONFIG_MODULE).joinpath(*group.split("/"))
    if not folder.is_dir():
        return []
    names = (p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))
    return sorted(name for name in names if not name.startswith(SHARED_PREFIX))


def check_choice(group: str, choice: str) -> None:
    """ConfigError when `group=choice` chooses a file that the group's options share instead of an option."""
    if not choice.startswith(SHARED_PREFIX):
        return
    if resources.files(CONFIG_MODULE).joinpath(*group.split("/"), f"{choice}.yaml").is_file():
        raise ConfigError(
            f"{group}={choice} is not allowed: conf/{group}/{choice}.yaml holds what every {group} option "
            f"extends; choose one of {', '.join(group_options(group))}."
        )


def compose_config(
    overrides: Sequence[str] = (),
    run_dir: str | Path | None = None,
    config_name: str = "train",
    return_hydra_config: bool = False,
) -> DictConfig:
    """Compose `conf/<config_name>.yaml` with `overrides`, as the command line would.

    Outside a Hydra run there is no runtime output folder, so `run_dir` stands in for it.
    """
    overrides = list(overrides)
    if run_dir is not None:
        overrides.append(f"paths.run_dir={Path(run_dir).resolve()}")
    if GlobalHydra.instance().is_initialized():
        # Inside a command (a Hydra app on the same config module): compose with its search path.
        return compose(config_name=config_name, overrides=overrides, return_hydra_config=return_hydra_config)
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        return compose(config_name=config_name, overrides=overrides, return_hydra_config=return_hydra_config)


def instantiate(node, *args, **kwargs):
    """Hydra's `instantiate`, except that a user mistake raised by a constructor (a UserError) comes out
    as itself rather than wrapped in Hydra's InstantiationException, so the command prints its message."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate

    from handwriting_gan.errors import UserError

    try:
        return hydra_instantiate(node, *args, **kwargs)
    except InstantiationException as error:
        cause = error.__cause__
        while cause is not None and not isinstance(cause, UserError):
            cause = cause.__cause__
        if cause is None:
            raise
        raise cause from None
