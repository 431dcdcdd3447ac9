"""The domain-classifier cache: one trained classifier per (dataset content, classifier settings).

`<cache_dir>/classifiers/<DataModule>-<key>.pt` holds the weights; `<...>.json` beside it records the
real test-split accuracy, the settings and the training time for a person to read. Both are written
atomically, so an interrupted training leaves no half-written file that a later run would trust.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch

from handwriting_gan import __version__
from handwriting_gan.files import atomic_path
from handwriting_gan.metrics.classifier import (
    DEFAULT_SETTINGS,
    ClassifierSettings,
    DomainClassifier,
    accuracy,
    fit_classifier,
)

log = logging.getLogger(__name__)

FORMAT = "handwriting_gan.domain_classifier"
FORMAT_VERSION = 1


@dataclass
class CachedClassifier:
    classifier: DomainClassifier
    test_acc: float
    path: Path
    #: True when this call trained the classifier, False when it came from the cache.
    trained: bool
    train_seconds: float


def dataset_fingerprint(datamodule: L.LightningDataModule) -> str:
    """SHA-256 of both splits' pixels and labels, the image shape and the class names."""
    sha = hashlib.sha256()
    header = {"class_names": list(datamodule.class_names), "image_shape": list(datamodule.image_shape)}
    sha.update(json.dumps(header, sort_keys=True).encode())
    for train in (True, False):
        images, labels = datamodule.split(train=train)
        for tensor in (images, labels):
            sha.update(str(tuple(tensor.shape)).encode())
            sha.update(memoryview(tensor.contiguous().numpy()).cast("B"))
    return sha.hexdigest()


def reference_data(datamodule: L.LightningDataModule) -> L.LightningDataModule:
    """`datamodule.reference_data()` where the dataset has one (every ImageDataModule), else itself."""
    reference = getattr(datamodule, "reference_data", None)
    return reference() if callable(reference) else datamodule


def cache_key(fingerprint: str, settings: ClassifierSettings) -> str:
    """Changes with the dataset's content, any classifier setting, or this cache's format."""
    payload = {"format_version": FORMAT_VERSION, "dataset": fingerprint, "classifier": settings.as_dict()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def classifier_path(
    datamodule: L.LightningDataModule, cache_dir: str | Path, settings: ClassifierSettings
) -> Path:
    key = cache_key(dataset_fingerprint(datamodule), settings)
    return Path(cache_dir) / "classifiers" / f"{type(datamodule).__name__}-{key}.pt"


def load_or_train(
    datamodule: L.LightningDataModule,
    cache_dir: str | Path,
    settings: ClassifierSettings = DEFAULT_SETTINGS,
    device: str | torch.device = "cpu",
) -> CachedClassifier:
    """The dataset's domain classifier from the cache, trained (and cached) first if absent. It is
    trained on the dataset's reference data (`reference_data`: every real training image, none of a
    few-shot subset's limits or an expanded dataset's synthetic images)."""
    datamodule = reference_data(datamodule)
    path = classifier_path(datamodule, cache_dir, settings)
    cached = _load(path, datamodule, settings, device)
    if cached is not None:
        return cached

    images, labels = datamodule.split(train=True)
    test_images, test_labels = datamodule.split(train=False)
    log.info(
        "Training the domain classifier of %s on %d images (%d epochs); it is cached at %s",
        type(datamodule).__name__,
        len(images),
        settings.epochs_for(len(images)),
        path,
    )
    started = time.perf_counter()
    classifier = fit_classifier(images, labels, datamodule.num_classes, settings, device)
    seconds = time.perf_counter() - started
    test_acc = accuracy(classifier, test_images, test_labels)
    log.info("Domain classifier: %.2f%% test accuracy after %.0f s", 100 * test_acc, seconds)

    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "settings": settings.as_dict(),
        "image_shape": list(datamodule.image_shape),
        "num_classes": datamodule.num_classes,
        "test_acc": test_acc,
        "train_seconds": seconds,
        "state_dict": {k: v.detach().cpu() for k, v in classifier.state_dict().items()},
    }
    record = {k: v for k, v in payload.items() if k not in ("format", "state_dict")}
    record.update(
        dataset=type(datamodule).__name__,
        class_names=list(datamodule.class_names),
        num_train=len(images),
        num_test=len(test_images),
        device=str(device),
        package_version=__version__,
    )
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    with atomic_path(path.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    return CachedClassifier(classifier, test_acc, path, trained=True, train_seconds=seconds)


def _load(path: Path, datamodule, settings: ClassifierSettings, device) -> CachedClassifier | None:
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload.get("format") != FORMAT or payload.get("format_version") != FORMAT_VERSION:
            raise ValueError("not a domain classifier of this format version")
        classifier = DomainClassifier.build(datamodule.image_shape, datamodule.num_classes, settings)
        classifier.load_state_dict(payload["state_dict"])
    except Exception as exc:  # the cache is disposable: anything unreadable is simply retrained
        log.warning("Ignoring unreadable cached classifier %s (%s); training a new one.", path, exc)
        return None
    classifier = classifier.to(device).eval()
    return CachedClassifier(
        classifier, float(payload["test_acc"]), path, trained=False, train_seconds=payload["train_seconds"]
    )
