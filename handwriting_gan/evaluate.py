"""The evaluation command: quality metrics of a finished run's generator against its dataset.

`python -m handwriting_gan.evaluate run_dir=<run folder> [num_samples=10000]` rebuilds the run's dataset
from its `.hydra/config.yaml`, loads `generator.pt`, and prints one JSON line of metrics (see
handwriting_gan/metrics) that it also writes to `<run folder>/metrics.json`.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Iterable
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from handwriting_gan.cli import exit_with
from handwriting_gan.config import CONFIG_DIR
from handwriting_gan.errors import CheckpointError, ConfigError, UserError
from handwriting_gan.files import atomic_path
from handwriting_gan.metrics.cache import load_or_train
from handwriting_gan.metrics.classifier import DEFAULT_SETTINGS, ClassifierSettings
from handwriting_gan.metrics.report import GROUPS, RealReference, check_groups, quality_metrics
from handwriting_gan.metrics.sampling import conditional_classes, draw_samples
from handwriting_gan.models.generator_file import load_generator

METRICS_FILE = "metrics.json"
#: Fewer samples than this leave the k-NN metrics (k=5) and the covariances of FD meaningless.
MIN_SAMPLES = 10
SAMPLES_ADVICE = " (10000 is the usual; fewer give noisier, upward-biased FD and KID)"


def load_run(run_dir: Path, data_dir: str | None = None) -> tuple[DictConfig, L.LightningDataModule]:
    """The run's composed config and its dataset, rebuilt as the run saw it."""
    if not run_dir.is_dir():
        raise CheckpointError(
            f"run_dir={run_dir} does not exist; pass a run folder such as outputs/<name>/<time>."
        )
    config_file = run_dir / ".hydra" / "config.yaml"
    if not config_file.is_file():
        raise CheckpointError(
            f"run_dir={run_dir} is not a run folder: it has no .hydra/config.yaml. Pass a folder made by "
            f"`python -m handwriting_gan`, e.g. outputs/default/<timestamp>."
        )
    cfg = OmegaConf.load(config_file)
    # The run's own folder, not the folder of whatever process reads the config now.
    cfg.paths.run_dir = str(run_dir)
    if data_dir is not None:
        cfg.paths.data_dir = str(data_dir)
    return cfg, instantiate(cfg.dataset)


def evaluate_generator(
    generator: torch.nn.Module,
    metadata: dict,
    datamodule: L.LightningDataModule,
    cache_dir: str | Path,
    num_samples: int = 10_000,
    seed: int = 0,
    classifier: ClassifierSettings = DEFAULT_SETTINGS,
    groups: Iterable[str] = GROUPS,
    device: str = "cpu",
    batch_size: int = 500,
) -> dict:
    """Every metric of `groups` for a loaded generator (see `load_generator`) against `datamodule`,
    as a flat JSON-ready dict."""
    groups = check_groups(groups)
    cached = load_or_train(datamodule, cache_dir, classifier, device)
    reference = RealReference(datamodule, cached, device)
    images, requested = draw_samples(
        generator.to(device), num_samples, metadata["latent_dim"], seed=seed, batch_size=batch_size
    )
    values = quality_metrics(reference, images, requested, groups, seed=seed, cas_settings=classifier)
    if "fd" in groups:
        values["fd_floor"] = reference.fd_floor(num_samples, seed)
    if "class_histogram" in values:
        values["class_histogram"] = dict(
            zip(map(str, datamodule.class_names), values["class_histogram"], strict=True)
        )
    values.update(
        classifier_test_acc=cached.test_acc,
        classifier_file=str(cached.path.resolve()),
        conditional=conditional_classes(generator) > 0,
        dataset=type(datamodule).__name__,
        num_samples=num_samples,
        num_real_test=len(reference.test[0]),
        seed=seed,
    )
    return values


def load_run_generator(
    run_dir: Path, data_dir: str | Path | None = None, cache_dir: str | Path | None = None
) -> tuple[torch.nn.Module, dict, L.LightningDataModule, str | Path]:
    """A finished run's generator, its metadata, its dataset and the cache folder to use (the run's
    paths.cache_dir unless `cache_dir` is given); raises CheckpointError for an unfinished run or a
    generator.pt that does not belong to it."""
    run_cfg, datamodule = load_run(run_dir, data_dir)
    generator_file = run_dir / "generator.pt"
    if not generator_file.is_file():
        raise CheckpointError(
            f"run_dir={run_dir} has no generator.pt: the run has not finished (it is written when training "
            f"ends). Let it finish, or continue it with `python -m handwriting_gan resume={run_dir}`."
        )
    generator, metadata = load_generator(generator_file)
    if tuple(metadata["image_shape"]) != tuple(datamodule.image_shape):
        raise CheckpointError(
            f"{generator_file} makes {metadata['image_shape']} images but the run's dataset has "
            f"{list(datamodule.image_shape)}; the file does not belong to this run."
        )
    if cache_dir is None:
        cache_dir = OmegaConf.select(run_cfg, "paths.cache_dir", default="cache")
    return generator, metadata, datamodule, cache_dir


def evaluate_run(
    run_dir: str | Path,
    cache_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
    **options,
) -> dict:
    """`evaluate_generator` for the generator.pt and dataset of `run_dir`; `cache_dir` defaults to
    the run's paths.cache_dir, `data_dir` to its paths.data_dir."""
    generator, metadata, datamodule, cache_dir = load_run_generator(
        Path(run_dir).expanduser(), data_dir, cache_dir
    )
    return evaluate_generator(generator, metadata, datamodule, cache_dir, **options)


def choose_device(device: str) -> str:
    device = str(device)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={device} but no CUDA GPU is visible; use device=cpu or device=auto.")
    if not (device == "cpu" or device.startswith("cuda")):
        raise ConfigError(f"device={device} is not one of cpu, cuda, cuda:<index>, auto.")
    return device


def check_count(key: str, value, minimum: int, advice: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{key}={value} must be a whole number of at least {minimum}{advice}.")
    return value


def _json_ready(values: dict) -> dict:
    """NaN and infinity are not JSON; they become null."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in values.items()}


def evaluate(cfg: DictConfig) -> dict:
    """The command: check `cfg` (conf/evaluate.yaml), measure, write metrics.json, print one JSON line."""
    if cfg.run_dir is None:
        raise ConfigError(
            "run_dir is required: python -m handwriting_gan.evaluate run_dir=outputs/<name>/<timestamp>"
        )
    options = dict(
        num_samples=check_count("num_samples", cfg.num_samples, MIN_SAMPLES, SAMPLES_ADVICE),
        seed=int(cfg.seed),
        classifier=ClassifierSettings.from_mapping(OmegaConf.to_container(cfg.classifier)),
        groups=check_groups(cfg.metrics),
        device=choose_device(cfg.device),
        batch_size=check_count("batch_size", cfg.batch_size, 1),
    )
    if cfg.threads is not None:
        torch.set_num_threads(check_count("threads", cfg.threads, 1))
    run_dir = Path(str(cfg.run_dir)).expanduser()
    values = evaluate_run(run_dir, cache_dir=cfg.cache_dir, data_dir=cfg.data_dir, **options)
    line = json.dumps(_json_ready(values), allow_nan=False)
    with atomic_path(run_dir / METRICS_FILE) as tmp:
        tmp.write_text(line + "\n")
    print(line, flush=True)
    return values


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="evaluate")
def _hydra_main(cfg: DictConfig) -> None:
    # Progress (classifier training) goes to stderr, so stdout carries only the JSON line.
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        evaluate(cfg)
    except UserError as error:
        exit_with(error)


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
