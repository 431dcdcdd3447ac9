"""The evaluation command: quality metrics of a finished run's generator against its dataset.

`python -m handwriting_gan.evaluate run_dir=<run folder> [num_samples=10000] [against=<dataset>]`
rebuilds the run's dataset from its `.hydra/config.yaml` (or, with `against`, another dataset config with
the same classes, e.g. the full MNIST for a run on the embedded sample), loads `generator.pt`, and prints
one JSON line of metrics (see handwriting_gan/metrics) that it also writes to `<run folder>/metrics.json`
(`<run folder>/metrics_<against>.json` with `against`). A run whose discriminator classifies
(model=ssgan_mlp, classifier.pt) also gets `discriminator_classifier`: its test accuracy and error and the
accuracy of each class.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Iterable
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from handwriting_gan.errors import ConfigError
from handwriting_gan.files import atomic_path
from handwriting_gan.metrics.cache import load_or_train
from handwriting_gan.metrics.classifier import DEFAULT_SETTINGS, ClassifierSettings
from handwriting_gan.metrics.report import GROUPS, RealReference, check_groups, quality_metrics
from handwriting_gan.metrics.sampling import conditional_classes, draw_samples
from handwriting_gan.runs import RunFolder, classifier_for_run
from handwriting_gan.shell import check_count, choose_device, command, set_threads, sets_node

log = logging.getLogger(__name__)

#: FD and its floor flatter smaller numbers of samples or real test images (the same generator scores
#: several times closer to its floor against a small test split with few samples; docs/guide has the
#: figures): below this, evaluate warns.
COMPARABLE_SIZE = 10_000
#: Fewer samples than this leave the k-NN metrics (k=5) and the covariances of FD meaningless.
MIN_SAMPLES = 10
SAMPLES_ADVICE = " (10000 is the usual; fewer give noisier, upward-biased FD and KID)"


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
    values["warnings"] = size_warnings(num_samples, len(reference.test[0]))
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


def size_warnings(num_samples: int, num_test: int) -> list[str]:
    """What makes these numbers not comparable with 10,000-sample runs on a full test split."""
    warnings = []
    if num_samples < COMPARABLE_SIZE:
        warnings.append(
            f"num_samples={num_samples}: FD, KID and the floor are biased upward and noisier below "
            f"{COMPARABLE_SIZE:,}; compare only runs measured at the same num_samples."
        )
    if num_test < COMPARABLE_SIZE:
        warnings.append(
            f"the test split has {num_test:,} images: FD over its floor looks better against a small "
            f"split than against a full one; where the full dataset is available, measure against it too "
            f"(e.g. against=mnist for a run on the embedded sample)."
        )
    for warning in warnings:
        log.warning("Warning: %s", warning)
    return warnings


def evaluate_run(
    run_dir: str | Path,
    cache_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
    against: str | None = None,
    **options,
) -> dict:
    """`evaluate_generator` for the generator.pt and dataset of `run_dir`; `cache_dir` defaults to
    the run's paths.cache_dir, `data_dir` to its paths.data_dir. `against` names another dataset config
    (conf/dataset/<against>.yaml) to measure against instead; it must have the run's classes."""
    run = RunFolder(run_dir)
    generator, metadata, datamodule, cache_dir = run.load_generator(data_dir, cache_dir)
    if against is not None:
        datamodule = other_dataset(run, against, datamodule, data_dir)
    values = evaluate_generator(generator, metadata, datamodule, cache_dir, **options)
    values["against"] = against
    if run.classifier_file.is_file():
        # A semi-supervised run's discriminator names classes: scored on the same test split.
        from handwriting_gan.models.classifier_file import load_classifier

        test_images, test_labels = datamodule.split(train=False)
        values["discriminator_classifier"] = load_classifier(run.classifier_file).score(
            test_images, test_labels
        )
    return values


def other_dataset(run: RunFolder, name: str, own: L.LightningDataModule, data_dir) -> L.LightningDataModule:
    """The dataset config `name`, composed with the run's data folder and seed, checked to share the run's
    classes and image shape."""
    from hydra.errors import MissingConfigException

    from handwriting_gan.config import compose_config, instantiate

    cfg = run.load_config(data_dir)
    overrides = [f"dataset={name}", f"paths.data_dir={cfg.paths.data_dir}", f"seed={cfg.seed}"]
    try:
        composed = compose_config(overrides, run_dir=run.path)
    except MissingConfigException as error:
        raise ConfigError(f"against={name}: {str(error).splitlines()[0]}") from None
    other = instantiate(composed.dataset)
    if tuple(other.class_names) != tuple(own.class_names) or tuple(other.image_shape) != tuple(
        own.image_shape
    ):
        raise ConfigError(
            f"against={name}: {type(other).__name__} has {len(other.class_names)} classes of "
            f"{list(other.image_shape)} images, but the run's dataset ({type(own).__name__}) has "
            f"{len(own.class_names)} of {list(own.image_shape)}; measure against a dataset with the run's "
            f"classes (e.g. against=mnist for a run on mnist_sample)."
        )
    return other


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
        classifier=classifier_for_run(
            str(cfg.run_dir),
            ClassifierSettings.from_mapping(OmegaConf.to_container(cfg.classifier)),
            chosen=sets_node(cfg, "classifier"),
        ),
        groups=check_groups(cfg.metrics),
        device=choose_device(cfg.device),
        batch_size=check_count("batch_size", cfg.batch_size, 1),
    )
    set_threads(cfg.threads)
    run = RunFolder(str(cfg.run_dir))
    against = None if cfg.get("against") is None else str(cfg.against)
    values = evaluate_run(
        run.path, cache_dir=cfg.cache_dir, data_dir=cfg.data_dir, against=against, **options
    )
    line = json.dumps(_json_ready(values), allow_nan=False)
    target = run.metrics_file if against is None else run.path / f"metrics_{against}.json"
    with atomic_path(target) as tmp:
        tmp.write_text(line + "\n")
    print(line, flush=True)
    return values


def _task(cfg: DictConfig) -> dict:
    # Progress (classifier training) goes to stderr, so stdout carries only the JSON line.
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    return evaluate(cfg)


def main() -> None:
    command("evaluate", _task)()


if __name__ == "__main__":
    main()
