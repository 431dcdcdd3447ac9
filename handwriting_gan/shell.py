"""The command shell every command (train, evaluate, export, study) runs in: the Hydra entry point on the
packaged configs, checks of the command line before any work, quiet logging, and user errors printed
as one line with their exit code (handwriting_gan.errors)."""

from __future__ import annotations

import difflib
import inspect
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import hydra
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from handwriting_gan.config import CONFIG_PATH, SHARED_PREFIX, check_choice, compose_config
from handwriting_gan.errors import ConfigError, UserError, exit_with


def command(
    config_name: str,
    task: Callable[[DictConfig], Any],
    prepare: Callable[[list[str]], list[str]] | None = None,
) -> Callable[[], Any]:
    """The Hydra entry point of a command: checks the command line before Hydra sees it, composes
    `conf/<config_name>.yaml` with it and calls `task(cfg)`. The check is `prepare(argv)`, which returns
    the arguments Hydra runs with (training's also claims the run folder), or by default
    `check_command_line`. A UserError from the check or the task is printed as one line and exits with
    its code, so every command reports a bad override the same way (Hydra would print its own message
    and exit 1)."""

    @hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name=config_name)
    def _entry(cfg: DictConfig) -> Any:
        return _run_task(task, cfg)

    def _run() -> Any:
        quiet_dependencies()
        try:
            argv = prepare(sys.argv[1:]) if prepare else check_command_line(config_name, sys.argv[1:])
            check_plugins(config_name, argv)
        except UserError as error:
            exit_with(error)
        sys.argv = [sys.argv[0], *argv]
        return _entry()

    return _run


def check_command_line(config_name: str, argv: list[str]) -> list[str]:
    """Raise ConfigError for a mistake in a single run's overrides (see compose_checked); returns `argv`.
    A command line with flags is left to Hydra: its own (`--help`, `--cfg job`) need no check, and a
    sweep's (`-m`) lists of values are composed per job."""
    if not any(arg.startswith("-") for arg in argv):
        compose_checked(config_name, argv)
    return argv


def _run_task(task: Callable[[DictConfig], Any], cfg: DictConfig) -> Any:
    """One job of a command: `task(cfg)` with quiet logging and the job's own command line. A module
    function, not part of `command`'s closure, because launchers such as submitit pickle the entry
    point by value, and the ContextVar below cannot be pickled (a module function is pickled by name)."""
    from hydra.core.hydra_config import HydraConfig

    quiet_dependencies()
    given = _COMMAND_LINE.set(tuple(str(o) for o in HydraConfig.get().overrides.task))
    try:
        with job_command_line(cfg):
            return task(cfg)
    except UserError as error:
        exit_with(error)
    finally:
        _COMMAND_LINE.reset(given)


#: The overrides of the command line whose task is running (set by `_run_task` for the task's duration).
_COMMAND_LINE: ContextVar[tuple[str, ...] | None] = ContextVar("command_line", default=None)


def sets_node(cfg: DictConfig, node: str) -> bool:
    """Whether the command line sets `node` or a key of it (`node=<option>`, `node.key=...`,
    `+node.key=...`, `~node`): Hydra's record in `cfg` when it was composed with one, else the running
    command's. A config composed without either (compose_config, in a test or a notebook) counts as
    setting it: what its caller composed is what it asked for."""
    if "hydra" in cfg:
        overrides = [str(o) for o in cfg.hydra.overrides.task]
    elif _COMMAND_LINE.get() is not None:
        overrides = list(_COMMAND_LINE.get())
    else:
        return True
    return any(_key(o).split(".")[0] == node for o in overrides)


# -- Hydra plugins -------------------------------------------------------------------------------
#: Sweepers and launchers of Hydra plugins, and the extra of pyproject.toml that installs each.
PLUGIN_EXTRAS = {
    "hydra/sweeper/optuna": "sweeps",
    "hydra/launcher/submitit_slurm": "cluster",
    "hydra/launcher/submitit_local": "cluster",
    "hydra/launcher/joblib": "cluster",
}
#: Overrides that can choose a sweeper or launcher: Hydra's own groups, and ours whose files override them.
PLUGIN_CHOOSERS = ("hydra/", "hparams_search", "experiment")


def compose_without_sweeps(config_name: str, argv: Sequence[str]) -> DictConfig:
    """`conf/<config_name>.yaml` composed with Hydra's own settings and the command line's overrides,
    less its flags (`-m`) and swept values (`d_steps=1,2`): what every job of a sweep shares. Raises
    Hydra's or OmegaConf's error for a mistake."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides([arg for arg in argv if not arg.startswith("-")])
    return compose_config(
        [o.input_line for o in parsed if not o.is_sweep_override()],
        config_name=config_name,
        return_hydra_config=True,
    )


def check_plugins(config_name: str, argv: Sequence[str]) -> None:
    """Raise ConfigError naming the extra to install when the command line chooses a Hydra sweeper or
    launcher (directly, e.g. `hydra/launcher=joblib`, or through a config such as
    `hparams_search=optuna_fd`) whose plugin is not installed. Hydra itself would print a page of
    search paths and available options."""
    if not any(_key(arg).startswith(PLUGIN_CHOOSERS) for arg in argv if not arg.startswith("-")):
        return
    try:
        compose_without_sweeps(config_name, argv)
    except (HydraException, OmegaConfBaseException) as error:
        hint = plugin_hint(str(error))
        if hint:
            raise ConfigError(hint) from None
        # Any other mistake is reported by the command's own checks, or by Hydra.


def plugin_hint(message: str) -> str:
    """For Hydra's "Could not find 'hydra/launcher/joblib'", a line that says which extra installs it."""
    for config, extra in PLUGIN_EXTRAS.items():
        if f"Could not find '{config}'" in message:
            group, _, name = config.rpartition("/")
            return (
                f"{group}={name} needs a Hydra plugin that is not installed; install the `{extra}` extra: "
                f"pip install 'handwriting_gan[{extra}]' (in a checkout: pip install -e '.[{extra}]')."
            )
    return ""


def _make_folder(path: str) -> str:
    """The `hwgan.mkdir` resolver: `path`, created (with its parents) if missing."""
    os.makedirs(path, exist_ok=True)
    return path


if not OmegaConf.has_resolver("hwgan.mkdir"):
    OmegaConf.register_new_resolver("hwgan.mkdir", _make_folder)


#: What Lightning's DDP launcher sets in its own process; while set, Lightning takes the other ranks as
#: started already.
DISTRIBUTED_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


@contextmanager
def job_command_line(cfg: DictConfig) -> Iterator[None]:
    """Inside one job of a sweep (`-m`), `sys.argv` and `hydra.run.dir` as if the job had been started
    alone in its own folder, and no distributed state left for the next job.

    Lightning's DDP launcher starts ranks 1.. as `python -m <module> sys.argv[1:] hydra.run.dir=<run.dir>`,
    which from a sweep job would start the whole sweep again, in a new folder (lightning 2.6 handles
    Hydra's single runs only). After fit it keeps its process group and variables, with which the next
    job's trainer would wait for ranks that are gone."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        yield
        return
    check_rank_launch(cfg)
    job = HydraConfig.get()
    with read_write(job), open_dict(job):
        job.run.dir = job.runtime.output_dir
    argv, variables = sys.argv, {key: os.environ.get(key) for key in DISTRIBUTED_VARIABLES}
    sys.argv = [argv[0], *job.overrides.task]
    try:
        yield
    finally:
        sys.argv = argv
        _leave_process_group(variables)


def check_rank_launch(cfg: DictConfig) -> None:
    """Refuse a sweep job whose DDP trainer would start its other ranks with a command line that does
    not run this package: a launcher that runs each job in a process of its own (joblib, submitit)
    is that process's `python -m <module>`. Under SLURM with one task per device nothing is started."""
    trainer = cfg.get("trainer") or {}
    strategy = str(trainer.get("strategy", ""))
    if "ddp" not in strategy or "spawn" in strategy or str(trainer.get("devices", 1)) == "1":
        return
    if int(os.environ.get("SLURM_NTASKS", "1") or 1) > 1:
        return
    # Lightning restarts `python -m <__main__'s module>`, or the script (hwgan-train) when there is none.
    main = getattr(sys.modules.get("__main__"), "__spec__", None)
    if main is None or main.name.split(".")[0] == __name__.split(".")[0]:
        return
    raise ConfigError(
        f"trainer.strategy={strategy} starts its other ranks as `python -m {main.name}`, the process "
        f"this launcher runs the job in, not handwriting_gan. Sweep DDP runs with Hydra's "
        f"basic launcher (no hydra/launcher override), or on SLURM with hydra/launcher=submitit_slurm "
        f"hydra.launcher.tasks_per_node=<trainer.devices>."
    )


def _leave_process_group(variables: dict[str, str | None]) -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    for key, value in variables.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def compose_checked(config_name: str, argv: Sequence[str]) -> DictConfig:
    """Compose `config_name` with the command line's overrides (not Hydra's own), raising ConfigError
    for unknown groups, bad syntax, wrong types and unknown keys, even those added with `+`."""
    overrides = [arg for arg in argv if not _key(arg).startswith("hydra.")]
    # The config without additions, to check them against; it also leaves out overrides of what an
    # addition creates (a resume repeats `+callbacks.x._target_=...` and may then set callbacks.x.y).
    added = [_key(a).rpartition(".")[0] + "." for a in overrides if a.startswith("+")]
    plain = [a for a in overrides if not a.startswith(("+", "~")) and not _key(a).startswith(tuple(added))]
    for arg in overrides:
        if "=" in arg:
            check_choice(_key(arg), arg.split("=", 1)[1])
    try:
        cfg = compose_config(overrides, config_name=config_name)
        base = compose_config(plain, config_name=config_name)
    except (HydraException, OmegaConfBaseException) as error:
        hint = plugin_hint(str(error))
        if hint:
            raise ConfigError(hint) from None
        unknown = _unknown_override(config_name, overrides, error)
        if unknown is not None:
            raise unknown from None
        raise ConfigError(f"the configuration cannot be composed: {_composition_message(error)}") from None
    for arg in overrides:
        if arg.startswith("+"):
            error = _unknown_key(base, arg, config_name)
            if error is not None:
                raise error
    return cfg


def _key(arg: str) -> str:
    return arg.split("=", 1)[0].lstrip("+~")


def _unknown_override(config_name: str, overrides: list[str], error: Exception) -> ConfigError | None:
    """For a composition that failed because an override sets a key the configuration does not have
    (OmegaConf's key error, with the key), the error that names it; else None."""
    cause = error.__cause__
    if not isinstance(cause, (ConfigKeyError, ConfigAttributeError)) or not cause.full_key:
        return None
    given = [arg for arg in overrides if f"{_key(arg)}.".startswith(f"{cause.full_key}.")]
    if not given:
        return None
    try:
        base = compose_config([a for a in overrides if a not in given], config_name=config_name)
    except (HydraException, OmegaConfBaseException):
        return None  # more than one mistake: Hydra's own message names the first
    return _unknown_key(base, given[-1], config_name)


def _unknown_key(base: DictConfig, arg: str, config_name: str) -> ConfigError | None:
    """The error for override `arg` of a key that `base` lacks, naming the first missing part and the
    closest known key; None when the key exists or may be added. A key added with `+`/`++` may be an
    argument that the `_target_` of the config node it is added to accepts (e.g.
    `++trainer.limit_train_batches=10`), or start a new entry of a collection of `_target_` objects (e.g.
    `+callbacks.pause._target_=...`, a callback of one's own); setting such an argument without `+`
    names the `+` that adds it."""
    key, added = _key(arg), arg.startswith("+")
    parts = key.split(".")
    prefixes = (".".join(parts[:depth]) for depth in range(1, len(parts) + 1))
    missing = next(
        (p for p in prefixes if OmegaConf.select(base, p, default="__missing__") == "__missing__"), None
    )
    if missing is None:
        return None
    parent_key, _, leaf = missing.rpartition(".")
    parent = base if not parent_key else OmegaConf.select(base, parent_key)
    known: set[str] = set()
    if isinstance(parent, DictConfig):
        known = {str(k) for k in parent}
        if added and missing != key and _is_collection(parent):
            return None
        target = parent.get("_target_") if parent_key and missing == key else None
        if target is not None:
            accepted, open_ended = accepted_arguments(str(target))
            if open_ended or leaf in accepted:
                if added:
                    return None
                return ConfigError(
                    f"{key} is not set in conf/{config_name}.yaml; {target} takes it as an argument: "
                    f"add it with +{arg}."
                )
            known |= accepted
    close = difflib.get_close_matches(leaf, sorted(known), n=1)
    hint = f" Did you mean {parent_key + '.' if parent_key else ''}{close[0]}?" if close else ""
    where = f"{'+' if added else ''}{key}" + (f": {missing}" if missing != key else "")
    return ConfigError(f"{where} is not a known key of conf/{config_name}.yaml.{hint}")


def _is_collection(node: DictConfig) -> bool:
    """A mapping of named `_target_` objects, such as `callbacks`."""
    values = [node.get(k) for k in node]
    return (
        bool(values)
        and "_target_" not in node
        and all(isinstance(v, DictConfig) and "_target_" in v for v in values if v is not None)
    )


def accepted_arguments(target: str) -> tuple[set[str], bool]:
    """The keyword arguments the class or function named `target` accepts (following `**kwargs` up
    its base classes), and whether it accepts any keyword at all."""
    from hydra.utils import get_object

    try:
        obj = get_object(target)
    except Exception:  # an unimportable target is reported when the config is instantiated
        return set(), True
    callables = (
        [c.__init__ for c in inspect.getmro(obj) if "__init__" in vars(c)] if inspect.isclass(obj) else [obj]
    )
    names: set[str] = set()
    for function in callables:
        try:
            parameters = inspect.signature(function).parameters.values()
        except (TypeError, ValueError):
            return names, True
        names |= {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            return names - {"self"}, False
    return names - {"self"}, True


def _composition_message(error: Exception) -> str:
    """Hydra's message and its cause (which names the key and the expected type) on one line, a group's
    options listed with commas, minus search paths and the files a group's options share (Hydra lists
    them among the options)."""
    parts = [str(error)]
    if error.__cause__ is not None:
        parts.append(str(error.__cause__))
    message = "\n".join(parts).split("Config search path:")[0].strip()
    lines: list[str] = []
    for line in message.splitlines():
        if line.startswith("\t") and lines:  # an option of the group the line above names
            if not line.startswith(f"\t{SHARED_PREFIX}"):
                lines[-1] += (" " if lines[-1].endswith(":") else ", ") + line.strip()
        elif line.strip():
            lines.append(line.strip())
    return "".join(f"{line}{' ' if line.endswith(('.', ':')) else '; '}" for line in lines).strip(" ;")


# -- argument checks shared by the commands --------------------------------------------------------
def check_count(key: str, value, minimum: int, advice: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{key}={value} must be a whole number of at least {minimum}{advice}.")
    return value


def choose_device(device: str) -> str:
    """`auto` -> cuda when a GPU is visible, else cpu; refuses cuda where there is none."""
    import torch

    device = str(device)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={device} but no CUDA GPU is visible; use device=cpu or device=auto.")
    if not (device == "cpu" or device.startswith("cuda")):
        raise ConfigError(f"device={device} is not one of cpu, cuda, cuda:<index>, auto.")
    return device


def set_threads(threads: int | str | None) -> int:
    """Set torch's intra-op threads and return how many: a number, None for torch's default (every
    core), or "auto": the cores not busy with other work at start (at least 1). A thread on a core
    that other work holds waits for it at every synchronisation, so on a few cores the extra threads
    speed up a quiet machine and slow down a busy one (docs/results/throughput.md, Threads)."""
    import torch

    if threads == "auto":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        threads = max(1, min(cores, round(cores * idle_fraction())))
    elif threads is not None:
        threads = check_count("threads", threads, 1)
    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def idle_fraction(seconds: float = 0.25) -> float:
    """The share of CPU time that was idle over the next `seconds` (Linux /proc/stat), or, where that
    cannot be read, 1 minus the 1-minute load average per core (which lags behind recent changes)."""
    import time

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as handle:
            values = [int(v) for v in handle.readline().split()[1:]]
        return values[3] + values[4], sum(values)  # idle + iowait, total

    try:
        idle_before, total_before = sample()
        time.sleep(seconds)
        idle_after, total_after = sample()
        return (idle_after - idle_before) / max(1, total_after - total_before)
    except (OSError, ValueError, IndexError):
        cores = os.cpu_count() or 1
        return max(0.0, 1.0 - os.getloadavg()[0] / cores)


# -- quiet output ----------------------------------------------------------------------------------
class _DropAdvertisements(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (
            message.startswith("💡")
            or "litmodels" in message
            or "LitLogger" in message
            or message.startswith("TPU available")
        )


def quiet_dependencies() -> None:
    """Each message once, and none that only advertise or warn about dependencies' own deprecations:
    Lightning logs through its own handler, not also through the root logger Hydra sets up."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    # A semi-supervised run without validation labels hands Lightning an empty validation loader on
    # purpose (data/base.py: validation_loader).
    warnings.filterwarnings("ignore", message=".*Total length of `list` across ranks is zero.*")
    # Small datasets have fewer batches than the logging interval; epoch means are logged regardless.
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    # Checkpoints written before LastCheckpoint became a plain Checkpoint hold ModelCheckpoint's state
    # under its name, which nothing needs now.
    warnings.filterwarnings(
        "ignore", message=r'Be aware .* the following callbacks: \["LastCheckpoint\{[^]]*\}"\]\.$'
    )
    # Optuna's storage announces each of alembic's plugins at INFO.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    for name in ("lightning.pytorch", "lightning.fabric", "lightning", "pytorch_lightning"):
        logger = logging.getLogger(name)
        logger.propagate = False
        if not any(isinstance(f, _DropAdvertisements) for f in logger.filters):
            logger.addFilter(_DropAdvertisements())
        for handler in logger.handlers:
            if not any(isinstance(f, _DropAdvertisements) for f in handler.filters):
                handler.addFilter(_DropAdvertisements())


def duration(seconds: float) -> str:
    """`12.3 s` under a minute and a half, else `4 min 05 s`: how long work took or has left."""
    return f"{seconds:.1f} s" if seconds < 90 else f"{int(seconds // 60)} min {seconds % 60:02.0f} s"


def say(message: str) -> None:
    """One line for the user on stderr (stdout stays for machine-readable output), from the first
    process of a distributed run only."""
    if process_rank() == 0:
        print(message, file=sys.stderr, flush=True)


def process_rank() -> int:
    """This process's global rank in a distributed run (0 otherwise), from the variables Lightning's
    launcher and SLURM set, as lightning.pytorch.utilities.rank_zero_only reads them."""
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    return 0
