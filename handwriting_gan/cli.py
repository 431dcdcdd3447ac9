"""The `python -m handwriting_gan` command line: argument checks, Hydra, and errors without tracebacks.

Configuration mistakes are found before torch or any data is loaded: the command line composes the
config once to catch unknown groups, bad override syntax and wrong types, then `schema.validate`
checks ranges. Every `UserError` is printed as one message and exits with its own code.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import hydra
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from handwriting_gan.config import CONFIG_DIR
from handwriting_gan.errors import CheckpointError, ConfigError, UserError
from handwriting_gan.schema import validate

LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"
# What Hydra writes into a run folder before the run itself starts.
HYDRA_RECORD = {".hydra", "train.log"}


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


def precheck(argv: list[str]) -> None:
    """Compose and validate the config of a single run before Hydra starts it (sweeps are checked
    per job instead, since their overrides are lists of values)."""
    if any(arg.startswith("-") for arg in argv):
        return
    overrides = [arg for arg in argv if not arg.split("=", 1)[0].lstrip("+~").startswith("hydra.")]
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose(config_name="train", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as error:
        raise ConfigError(f"the configuration cannot be composed: {_composition_message(error)}") from None
    validate(cfg)
    output_dir = Path(cfg.paths.output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ConfigError(
            f"paths.output_dir={output_dir} is a file, not a folder; choose another paths.output_dir."
        )
    for arg in argv:
        key, _, value = arg.partition("=")
        if key in ("hydra.run.dir", "hydra.sweep.dir"):
            blocked = next((p for p in [Path(value), *Path(value).parents] if p.is_file()), None)
            if blocked is not None:
                raise ConfigError(f"{key}={value} cannot be created: {blocked} is a file.")
            if key == "hydra.run.dir" and not cfg.resume and (Path(value) / LAST_CHECKPOINT).exists():
                raise CheckpointError(
                    f"{value} already holds a run; pass resume={value} to continue it, or choose "
                    f"another hydra.run.dir."
                )


def _composition_message(error: Exception) -> str:
    """Hydra's message and its cause (which names the key and the expected type), minus search paths."""
    parts = [str(error)]
    if error.__cause__ is not None:
        parts.append(str(error.__cause__))
    text = "\n".join(parts)
    return text.split("Config search path:")[0].strip()


def exit_with(error: UserError) -> None:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(error.exit_code)


def discard_unstarted_run(run_dir: Path, output_dir: Path) -> None:
    """Remove a run folder that holds nothing but Hydra's record of a run that failed to start,
    and the folders above it that this leaves empty (up to paths.output_dir)."""
    if not run_dir.is_dir() or any(p.name not in HYDRA_RECORD for p in run_dir.iterdir()):
        return
    shutil.rmtree(run_dir)
    for parent in run_dir.parents:
        if parent == output_dir.parent or any(parent.iterdir()):
            break
        parent.rmdir()


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def _run(cfg: DictConfig) -> float | None:
    try:
        validate(cfg)
        from handwriting_gan.train import train  # torch and Lightning load only for a valid config

        return train(cfg)
    except UserError as error:
        if not cfg.resume:
            run_dir = Path(HydraConfig.get().runtime.output_dir)
            discard_unstarted_run(run_dir, Path(cfg.paths.output_dir).resolve())
        exit_with(error)


def main() -> None:
    try:
        argv = resume_arguments(sys.argv[1:])
        precheck(argv)
    except UserError as error:
        exit_with(error)
    sys.argv = [sys.argv[0], *argv]
    _run()


if __name__ == "__main__":
    main()
