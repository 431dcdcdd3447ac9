"""Choosing an image-conditional augmenter's training length on characters it never trained on.

The pair game has no loss that says when the augmenter's variations are most useful: the longer it runs,
the bolder the variations its discriminator lets pass. `AugmenterSelection` measures what a user would
get, on validation classes the augmenter never saw (Omniglot's `characters=validation` of the source
alphabets, so that no target dataset becomes a validation set): every `every_n_epochs` epochs, for each
few-shot episode (`per_class` real images per class, picked by the episode's seed), a classifier trained
on the real images, their classical copies and the augmenter's variations, against one trained on the
real images and classical copies alone (the study's arms (g) and (b)), both tested on the validation
classes' test split. The mean difference over episodes is logged as `selection/gain` (points); the
generator of the best evaluation so far is written to `path`, a generator file like `generator.pt`, so
that `augmenter=<that file>` uses it. `<run>/selection.json` keeps every evaluation.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from handwriting_gan.errors import ConfigError
from handwriting_gan.files import atomic_path
from handwriting_gan.models.contract import image_conditional
from handwriting_gan.shell import check_count, say

#: The study's arm classifier (conf/study.yaml arm_classifier): the same budget for both arms.
DEFAULT_CLASSIFIER = {"steps": 1000, "batch_size": 64, "max_shift": 0}


@dataclass
class Episode:
    """One few-shot draw of the validation classes: its real training images, their classical copies,
    the test split, and the accuracy of (b), the classifier of the real images and the copies."""

    seed: int
    images: torch.Tensor
    labels: torch.Tensor
    classical: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    baseline: float


class AugmenterSelection(L.Callback):
    """Every `every_n_epochs` epochs (and after the last), measures the image-conditional generator's
    variations on the classes of `dataset` with `dataset_changes`, `episodes` draws of `per_class` images
    each, and keeps the best generator in `path` (see the module's docstring). `generator` is the model's
    generator config (what the file records to rebuild it); `classical` the transform of the classical
    copies (`copies` of each real image), `variations` the augmenter's images per real one, `classifier`
    the classifiers' steps and recipe (the study's arm_classifier keys)."""

    def __init__(
        self,
        path: str,
        generator: Mapping,
        dataset: Mapping,
        classical: Mapping,
        dataset_changes: Mapping | None = None,
        every_n_epochs: int = 10,
        per_class: int = 5,
        episodes: int = 3,
        variations: int = 10,
        copies: int = 10,
        classifier: Mapping | None = None,
        seed: int = 0,
    ) -> None:
        from handwriting_gan.metrics.classifier import DEFAULT_SETTINGS, settings_for_steps

        self.every_n_epochs = check_count(
            "callbacks.selection.every_n_epochs", every_n_epochs, 1, " (e.g. 10)"
        )
        self.per_class = check_count("callbacks.selection.per_class", per_class, 1, " (e.g. 5)")
        self.num_episodes = check_count("callbacks.selection.episodes", episodes, 1, " (e.g. 3)")
        self.variations = check_count("callbacks.selection.variations", variations, 1, " (e.g. 10)")
        self.copies = check_count("callbacks.selection.copies", copies, 1, " (e.g. 10)")
        for name, node in (("dataset", dataset), ("classical", classical), ("generator", generator)):
            if not isinstance(node, Mapping) or "_target_" not in node:
                raise ConfigError(
                    f"callbacks.selection.{name} must be a config with a _target_ (the experiment's "
                    f"dagan_omniglot.yaml shows one), not {node!r}."
                )
        self.path = Path(path)
        self.generator_config = _plain(generator)
        self.dataset_config, self.classical_config = dataset, classical
        self.dataset_changes = dict(dataset_changes or {})
        self.steps, self.settings = settings_for_steps(
            dict(classifier or DEFAULT_CLASSIFIER), DEFAULT_SETTINGS
        )
        self.seed = int(seed)
        self.episodes: list[Episode] = []
        self.num_classes = 0
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None

    # -- the validation data, built before the first step ----------------------------------------
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from handwriting_gan.augment.classical import classical_copies
        from handwriting_gan.config import instantiate

        if not trainer.is_global_zero or self.episodes:
            return
        if not image_conditional(pl_module.sampling_generator):
            raise ConfigError(
                "callbacks.selection measures an image-conditional augmenter (model=dagan); this model draws "
                "from noise alone. Drop the callback (~callbacks.selection) or train model=dagan."
            )
        transform = instantiate(self.classical_config)
        with torch.random.fork_rng(devices=[]):  # the run's own random state stays as it was
            for episode in range(self.num_episodes):
                seed = self.seed + episode
                datamodule = instantiate(
                    self.dataset_config, **{**self.dataset_changes, "per_class": self.per_class, "seed": seed}
                )
                images, labels = datamodule.split(train=True)
                if tuple(images.shape[1:]) != tuple(pl_module.sampling_generator.image_shape):
                    raise ConfigError(
                        f"callbacks.selection.dataset has {list(images.shape[1:])} images, the augmenter "
                        f"makes {list(pl_module.sampling_generator.image_shape)}: give it the run's image "
                        f"size."
                    )
                self.num_classes = datamodule.num_classes
                copies = classical_copies(images, labels, transform, self.copies, seed)
                test = datamodule.split(train=False)
                baseline = self._accuracy(images, labels, [copies], test, seed, pl_module.device)
                self.episodes.append(Episode(seed, images, labels, copies, test, baseline))
        say(
            f"Selection: {self.num_episodes} episodes of {self.per_class} images of each of "
            f"{self.num_classes} validation classes; real + classical copies score "
            f"{self.baseline:.1f}% on their "
            f"{len(self.episodes[0].test[1])} test images. The augmenter is measured every "
            f"{self.every_n_epochs} epochs; the best so far goes to {self.path}."
        )

    # -- every n epochs --------------------------------------------------------------------------
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        if epoch % self.every_n_epochs and epoch != trainer.max_epochs:
            return
        if not trainer.is_global_zero or trainer.sanity_checking or trainer.fast_dev_run:
            return
        from handwriting_gan.augmenter import Augmenter

        augmenter = Augmenter(pl_module.sampling_generator, {}, "training", device=str(pl_module.device))
        accuracies = []
        with torch.random.fork_rng(devices=[]):
            for episode in self.episodes:
                varied, varied_labels, _ = augmenter.vary(
                    episode.images, episode.labels, self.variations, episode.seed
                )
                accuracies.append(
                    self._accuracy(
                        episode.images,
                        episode.labels,
                        [episode.classical, (varied, varied_labels)],
                        episode.test,
                        episode.seed,
                        pl_module.device,
                    )
                )
        gains = [100 * (a - e.baseline) for a, e in zip(accuracies, self.episodes, strict=True)]
        row = {
            "epoch": epoch,
            "step": int(trainer.global_step),
            "gain": statistics.fmean(gains),
            "gains": gains,
            "accuracy": 100 * statistics.fmean(accuracies),
            "baseline": self.baseline,
        }
        self.history.append(row)
        improved = self.best is None or row["gain"] > self.best["gain"]
        if improved:
            self.best = row
            from handwriting_gan.models.generator_file import save_generator

            # The training classes, as the run's generator.pt records them: the file says what it saw.
            names = getattr(trainer.datamodule, "class_names", ())
            save_generator(self.path, pl_module.sampling_generator, self.generator_config, names)
        self._write_history()
        for name in ("gain", "accuracy", "baseline"):
            pl_module.log(
                f"selection/{name}", float(row[name]), on_step=False, on_epoch=True, rank_zero_only=True
            )
        pl_module.log(
            "selection/best_epoch",
            float(self.best["epoch"]),
            on_step=False,
            on_epoch=True,
            rank_zero_only=True,
        )
        say(
            f"Selection at epoch {epoch}: with the variations {row['accuracy']:.1f}%, without "
            f"{row['baseline']:.1f}% ({row['gain']:+.1f} points; per episode "
            f"{', '.join(f'{g:+.1f}' for g in gains)}); best {self.best['gain']:+.1f} at epoch "
            f"{self.best['epoch']}" + (f", written to {self.path}" if improved else "")
        )

    def _accuracy(self, images, labels, extras, test, seed, device) -> float:
        from handwriting_gan.metrics.classifier import accuracy, fit_for_steps

        train_images = torch.cat([images, *(extra[0] for extra in extras)])
        train_labels = torch.cat([labels, *(extra[1] for extra in extras)])
        classifier, _ = fit_for_steps(
            train_images, train_labels, self.num_classes, self.settings, self.steps, seed, device
        )
        return accuracy(classifier, *test)

    @property
    def baseline(self) -> float:
        """(b)'s mean accuracy over the episodes, in %: fixed once they are drawn (no generator in it)."""
        return 100 * statistics.fmean(e.baseline for e in self.episodes)

    def _write_history(self) -> None:
        record = {"best": self.best, "evaluations": self.history, "generator": self.path.name}
        with atomic_path(self.path.with_name("selection.json")) as tmp:
            Path(tmp).write_text(json.dumps(record, indent=2) + "\n")

    # -- resume: the evaluations so far travel in the checkpoint ---------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history, "best": self.best}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
        self.best = state_dict.get("best")


def _plain(node: Mapping) -> dict:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
