"""The training command, `python -m handwriting_gan [overrides]` (`hwgan-train`): check the command
line, claim a run folder of its own, build the datamodule, the game, the callbacks, the logger and the
trainer from the config, and fit.

Configuration mistakes are found before any folder is made: the command line is composed once and
checked (handwriting_gan.shell, handwriting_gan.schema), and every object the run will build is
constructed once, so each `_target_`'s own checks run. The run folder's layout belongs to
handwriting_gan.runs.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from handwriting_gan.assembly import AUTO, build, build_game, check_accelerator, construct
from handwriting_gan.config import compose_config
from handwriting_gan.errors import ConfigError, UserError
from handwriting_gan.runs import RunFolder, claim
from handwriting_gan.schema import validate
from handwriting_gan.shell import (
    command,
    compose_checked,
    compose_without_sweeps,
    say,
    set_threads,
)
from handwriting_gan.warm_start import source_checkpoint, warm_start

log = logging.getLogger(__name__)


# -- the command line ---------------------------------------------------------------------------
def resume_arguments(argv: list[str]) -> list[str]:
    """Rewrite `resume=<run>` command lines so Hydra recomposes that run's config in that folder.

    The run's own overrides come first, then this command's (e.g. a larger trainer.max_epochs).
    Hydra writes nothing new into the folder's `.hydra/`, so the original record stays intact.
    """
    resume = [arg for arg in argv if arg.startswith("resume=")]
    if not resume:
        return argv
    run = RunFolder(resume[-1].split("=", 1)[1])
    run.require_resumable()
    given = [arg for arg in argv if not arg.startswith("resume=")]
    path = run.path.resolve()
    return [*run.overrides(), *given, f"resume={path}", f"hydra.run.dir={path}", "hydra.output_subdir=null"]


def prepare(argv: list[str]) -> list[str]:
    """Check a single run's command line completely and claim its run folder; returns the arguments
    Hydra runs with. Sweeps (`-m`) are checked per job instead, since their overrides are lists."""
    argv = resume_arguments(argv)
    if any(arg.startswith("-") for arg in argv):
        return claim_sweep_folder(argv)
    cfg = compose_checked("train", argv)
    validate(cfg)
    explicit = next((a.split("=", 1)[1] for a in argv if a.startswith("hydra.run.dir=")), None)
    if explicit is not None:
        blocked = next((p for p in [Path(explicit), *Path(explicit).parents] if p.is_file()), None)
        if blocked is not None:
            raise ConfigError(f"hydra.run.dir={explicit} cannot be created: {blocked} is a file.")
        if not cfg.resume and not requeued(RunFolder(explicit)):
            RunFolder(explicit).require_new()
    output_dir = Path(cfg.paths.output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ConfigError(
            f"paths.output_dir={output_dir} is a file, not a folder; choose another paths.output_dir."
        )
    construct(cfg, run_dir=explicit or output_dir / "unclaimed")
    if cfg.init_from and not cfg.resume:
        source_checkpoint(cfg.init_from)
    if cfg.resume:
        read_resume_checkpoint(cfg)
    if explicit is not None:
        return argv
    hydra_cfg = compose_config(
        [a for a in argv if not a.startswith("hydra.")], config_name="train", return_hydra_config=True
    )
    run_dir = claim(hydra_cfg.hydra.run.dir)
    return [*argv, f"hydra.run.dir={run_dir}"]


def claim_sweep_folder(argv: list[str]) -> list[str]:
    """A sweep (`-m`) without its own `hydra.sweep.dir` gets its folder as a single run does: claimed
    atomically, so two sweeps started in the same second never share one (the second gets `_2`)."""
    if not {"-m", "--multirun"} & set(argv) or any(a.startswith("hydra.sweep.dir=") for a in argv):
        return argv
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        hydra_cfg = compose_without_sweeps("train", argv)
    except (HydraException, OmegaConfBaseException):
        return argv  # a mistake on the command line: Hydra and each job's checks report it
    return [*argv, f"hydra.sweep.dir={claim(hydra_cfg.hydra.sweep.dir)}"]


# -- the run ------------------------------------------------------------------------------------
def train(cfg: DictConfig) -> float | None:
    """Fit the GAN described by `cfg` and return its `optimized_metric` for Hydra sweepers."""
    import lightning as L

    from handwriting_gan.models.classifier_file import save_classifier
    from handwriting_gan.models.contract import ClassifyingDiscriminator
    from handwriting_gan.models.generator_file import save_generator

    threads = set_threads(cfg.threads)
    log.info("torch threads: %d (threads=%s)", threads, cfg.threads)
    check_accelerator(cfg)
    run = RunFolder(cfg.paths.run_dir)
    checkpoint, resume_step = None, None
    if not cfg.resume and requeued(run):
        say(f"Requeued job: continuing {run.path} from {run.checkpoint}")
        cfg.resume = str(run.path)
    if cfg.resume:
        checkpoint = RunFolder(cfg.resume).checkpoint
        state = read_resume_checkpoint(cfg)
        resume_step = first_step_after(state)
    else:
        run.require_new()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    trainer, game, datamodule = build(cfg, resume_step)
    if cfg.init_from and checkpoint is None:
        say(warm_start(game, cfg.init_from).summary())
    trainer.fit(game, datamodule=datamodule, ckpt_path=checkpoint)

    if trainer.is_global_zero:
        if isinstance(getattr(game, "classifier", None), ClassifyingDiscriminator):
            # Before generator.pt, which marks the run finished: a finished run has both files.
            save_classifier(
                run.classifier_file, game.classifier, cfg.model.discriminator, datamodule.class_names
            )
        save_generator(
            run.generator_file, game.sampling_generator, cfg.model.generator, datamodule.class_names
        )
    metric = trainer.callback_metrics.get(optimized_metric(cfg))
    return float(metric) if metric is not None else None


def optimized_metric(cfg: DictConfig) -> str:
    """`cfg.optimized_metric`, or by default a quality metric when one is measured, not a loss."""
    if cfg.get("optimized_metric"):
        return str(cfg.optimized_metric)
    quality = cfg.callbacks.get("quality")
    return "quality/fd" if quality and quality.get("every_n_epochs") else "train/g_loss_epoch"


def requeued(run: RunFolder) -> bool:
    """True for a cluster job started again after preemption in the folder it had begun, with a
    checkpoint there: SLURM sets SLURM_RESTART_COUNT in a requeued job (`#SBATCH --requeue`,
    `scontrol requeue`, a preempted job of a requeue-enabled partition). Such a job continues as
    `resume=<its folder>` would, instead of refusing the folder that already holds its run."""
    restarts = os.environ.get("SLURM_RESTART_COUNT", "0").strip() or "0"
    return restarts.isdigit() and int(restarts) > 0 and run.checkpoint.is_file() and not run.is_finished()


def first_step_after(state: dict) -> int:
    """The first TensorBoard step of a run resumed from checkpoint `state` (the logger hides what the
    stopped run logged from that step on)."""
    loop = state["loops"]["fit_loop"]
    step = loop["epoch_loop.state_dict"]["_batches_that_stepped"]
    batches = loop["epoch_loop.batch_progress"]["total"]
    if batches["completed"] == batches["processed"] - 1:
        # Written from on_train_batch_end (every_n_batches), before Lightning counted that batch: the
        # batch's own step, logged after the checkpoint, belongs to it and is not logged again.
        step += 1
    return step


def read_resume_checkpoint(cfg: DictConfig) -> dict:
    """The checkpoint of `cfg.resume`, checked against the game `cfg` builds (for `num_classes: auto`,
    with the dataset's number of classes, read from its class names without loading the images)."""
    from handwriting_gan.config import instantiate

    conditional = AUTO in (cfg.model.generator.get("num_classes"), cfg.model.discriminator.get("num_labels"))
    num_classes = instantiate(cfg.dataset).num_classes if conditional else 0
    return RunFolder(cfg.resume).read_checkpoint(build_game(cfg.copy(), num_classes))


def _task(cfg: DictConfig) -> float | None:
    run = RunFolder(HydraConfig.get().runtime.output_dir)
    say(f"Run folder: {run.path}")
    try:
        validate(cfg)
        metric = train(cfg)
    except UserError:
        if not cfg.resume:
            discard_unstarted_run(run, Path(cfg.paths.output_dir).resolve())
        raise
    say(f"Finished. Run folder: {run.path}")
    return metric


def discard_unstarted_run(run: RunFolder, output_dir: Path) -> None:
    """Remove a run folder that holds nothing but Hydra's record of a run that failed to start, and
    the folders above it that this leaves empty (up to paths.output_dir)."""
    if not run.is_unstarted():
        return
    shutil.rmtree(run.path)
    for parent in run.path.parents:
        if parent == output_dir.parent or any(parent.iterdir()):
            break
        parent.rmdir()


def main() -> None:
    command("train", _task, prepare=prepare)()


if __name__ == "__main__":
    main()
