"""The training of the study's arms for one size and seed: the extra images each arm adds (the tuned
classical copies, the GAN run's exported synthetic images and those that pass the confidence filter,
the augmenter's variations), and each arm's classifier, trained and tested on the full real test split."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from handwriting_gan.augment.arms import KINDS, Arm
from handwriting_gan.augment.classical import Classical, classical_copies, tune
from handwriting_gan.errors import ConfigError, DataError
from handwriting_gan.metrics.classifier import fit_for_steps
from handwriting_gan.runs import RunFolder
from handwriting_gan.study.settings import Study
from handwriting_gan.study.steps import Progress
from handwriting_gan.study.store import Results

if TYPE_CHECKING:  # torch loads once the checks of the command line have passed
    import torch

    from handwriting_gan.augmenter import Augmenter


class TrainingSets:
    """The real training images of one size and seed and the extra images of each kind an arm can add,
    each kind made once, when an arm first needs it (the elastic transform of the classical copies is
    slow). `classical`: the tuned setting of (b) (None: the study's `classical` transform with `expansion`
    copies); `export_dir`: the GAN run's export (None without a GAN run); `augmenter`: the loaded
    augmenter (handwriting_gan.augmenter.Augmenter) or None; `num_classes`: the dataset's (the classifiers'
    outputs)."""

    def __init__(
        self,
        plan: Study,
        images: torch.Tensor,
        labels: torch.Tensor,
        export_dir: Path | None,
        seed: int,
        classical: Classical | None = None,
        augmenter: Augmenter | None = None,
        *,
        num_classes: int,
    ) -> None:
        self.plan, self.export_dir, self.seed, self.num_classes = plan, export_dir, seed, num_classes
        self.images, self.labels = images, labels
        self.classical_setting, self.augmenter_model = classical, augmenter

    def extra(self, arm: Arm) -> tuple[torch.Tensor, torch.Tensor]:
        """The extra images (and labels) `arm` adds to the real ones."""
        import torch

        parts = [self.kind(kind) for kind in arm.adds]
        if not parts:
            return self.images[:0], self.labels[:0]
        return torch.cat([images for images, _ in parts]), torch.cat([labels for _, labels in parts])

    def kind(self, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
        if kind not in KINDS:
            raise KeyError(f"no extra images of kind {kind!r}; the kinds are {sorted(KINDS)}")
        return getattr(self, kind)

    def describe(self, arm: Arm) -> str:
        """`40 real + 80 augmented + 61 synthetic`: the images of the arm's training set."""
        return " + ".join(
            [f"{len(self.images)} real", *(f"{len(self.kind(k)[1])} {KINDS[k]}" for k in arm.adds)]
        )

    @functools.cached_property
    def classical(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Randomly augmented copies of each real image: the tuned setting's transform and copies, or
        the study's `classical` transform with `expansion` copies."""
        transform, copies = self.classical_transform()
        return classical_copies(self.images, self.labels, transform, copies, self.seed)

    def classical_transform(self):
        """(b)'s transform and copies per real image: the tuned setting's, or the untuned default's."""
        if self.classical_setting is None:
            return instantiate_classical(self.plan), self.plan.expansion
        return self.classical_setting.transform(), self.classical_setting.copies

    @functools.cached_property
    def augmenter_classical(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The augmenter's variations, each through (b)'s classical transform: both kinds of variation
        on one image."""
        images, labels = self.augmenter
        return classical_copies(images, labels, self.classical_transform()[0], 1, self.seed + 1)

    @functools.cached_property
    def augmenter(self) -> tuple[torch.Tensor, torch.Tensor]:
        """`expansion` variations of each real image by the study's augmenter."""
        if self.augmenter_model is None:
            raise ConfigError("an augmenter arm needs augmenter=<name or run> (e.g. augmenter=omniglot).")
        images, labels, _ = self.augmenter_model.vary(
            self.images, self.labels, self.plan.expansion, self.seed
        )
        return images, labels

    @functools.cached_property
    def augmenter_checked(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The augmenter's variations that (b)'s classifier reads as their source's class."""
        from handwriting_gan.metrics.classifier import extract

        images, labels = self.augmenter
        _, predictions = extract(self.checker, images)
        keep = predictions.cpu() == labels
        return images[keep], labels[keep]

    def fit(self, extra_images: torch.Tensor, extra_labels: torch.Tensor):
        """(classifier, epochs): an arm's classifier, trained arm_steps steps on the real images and
        `extra_images`."""
        import torch

        return fit_for_steps(
            torch.cat([self.images, extra_images]),
            torch.cat([self.labels, extra_labels]),
            self.num_classes,
            self.plan.arm_classifier,
            self.plan.arm_steps,
            self.seed,
            self.plan.device,
        )

    @functools.cached_property
    def checker(self):
        """(b)'s classifier, trained as (b)'s arm trains it (train_arms hands over (b)'s own when it
        trains (b) in the same process)."""
        return self.fit(*self.classical)[0]

    @property
    def checked_fraction(self) -> float:
        return len(self.augmenter_checked[1]) / max(1, len(self.augmenter[1]))

    @functools.cached_property
    def synthetic(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The run's exported synthetic images, `expansion` x per_class of each class."""
        from handwriting_gan.data.exports import read_export

        if self.export_dir is None:
            raise ConfigError("a synthetic arm needs the study's GAN run and its export.")
        exported = read_export(self.export_dir)
        return exported.images, exported.labels

    @functools.cached_property
    def filtered(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The synthetic images the full-data domain classifier labels with at least filter_confidence."""
        images, labels = self.synthetic
        confident = confidences(self.export_dir) >= self.plan.filter_confidence
        return images[confident], labels[confident]

    @property
    def kept_fraction(self) -> float:
        return len(self.filtered[1]) / max(1, len(self.synthetic[1]))


def train_arms(
    plan: Study, per_class: int, seed: int, run: RunFolder | None, results: Results, progress: Progress
):
    """Train and test the classifier of each of plan.arms for (per_class, seed): on the real images of
    the finished, exported GAN run `run`, or, without one (no arm needs a GAN), on the real images the
    run's dataset config picks. The classical setting is tuned first when an arm needs it (stored, so a
    resumed study reuses it). Arms stored in `results` are skipped; each new one is stored at once."""

    from handwriting_gan.config import instantiate
    from handwriting_gan.metrics.cache import reference_data
    from handwriting_gan.metrics.classifier import accuracy

    label = f"per_class={per_class} seed={seed}"
    record = results.run(per_class, seed)
    stored = record["arms"]
    todo = [arm for arm in plan.arms if arm.key not in stored]
    if plan.tunes_classical and "classical_choice" in record:
        progress.step(f"{label}: classical augmentation already tuned")
    for arm in plan.arms:
        if arm.key in stored:
            progress.step(f"{label}: {arm.title} already trained and tested")
    if not todo and not (plan.tunes_classical and "classical_choice" not in record):
        return
    dataset = run.load_config().dataset if run is not None else dataset_config(plan, per_class, seed)
    datamodule = instantiate(dataset)
    images, labels = datamodule.split(train=True)
    test = reference_data(datamodule).split(train=False)

    def fit(train_images, train_labels, steps):
        return fit_for_steps(
            train_images, train_labels, datamodule.num_classes, plan.arm_classifier, steps, seed, plan.device
        )[0]

    classical = None
    if plan.tunes_classical:
        if "classical_choice" not in record:
            progress.step(
                f"{label}: tuning classical augmentation ({plan.classical_search.trials} settings on a "
                f"validation part of the {len(images)} real images)"
            )
            best, trials = tune(
                images,
                labels,
                datamodule.num_classes,
                plan.classical_search,
                plan.expansion,
                fit,
                accuracy,
                seed,
            )
            record["classical_choice"] = {"setting": best.as_dict(), "trials": trials}
            results.save()
        classical = Classical(**record["classical_choice"]["setting"])
    augmenter = load_augmenter(plan) if any(arm.needs_augmenter for arm in todo) else None
    sets = TrainingSets(
        plan,
        images,
        labels,
        run.export_dir if run is not None else None,
        seed,
        classical,
        augmenter,
        num_classes=datamodule.num_classes,
    )
    for arm in todo:
        extra_images, extra_labels = sets.extra(arm)
        progress.step(f"{label}: {arm.title}: training the classifier on {sets.describe(arm)} images")
        classifier, epochs = sets.fit(extra_images, extra_labels)
        stored[arm.key] = {
            "test_acc": accuracy(classifier, *test),
            "real_images": len(sets.images),
            "extra_images": len(extra_images),
            "epochs": epochs,
            "test_images": len(test[0]),
        }
        if arm.filtered:
            stored[arm.key]["kept_fraction"] = sets.kept_fraction
        if arm.checked:
            stored[arm.key]["kept_fraction"] = sets.checked_fraction
        if arm.adds == ("classical",):
            sets.checker = classifier  # (i)'s filter is this classifier: no second training
        results.save()


def dataset_config(plan: Study, per_class: int, seed: int):
    """The dataset config a GAN run (per_class, seed) of the study would have: the same real images."""
    from handwriting_gan.study.steps import run_config

    cfg, _ = run_config(plan, per_class, seed, plan.run_folder(per_class, seed).path)
    return cfg.dataset


@functools.cache
def _augmenter(spec: str, device: str) -> Augmenter:
    from handwriting_gan.augmenter import Augmenter

    return Augmenter.load(spec, device=device)


def load_augmenter(plan: Study) -> Augmenter:
    """The study's augmenter, loaded once per process."""
    if plan.augmenter is None:
        raise ConfigError(
            "arms (f) and (g) need an augmenter: augmenter=omniglot (shipped) or a run folder of model=dagan."
        )
    return _augmenter(plan.augmenter, plan.device)


def confidences(export_dir: Path) -> torch.Tensor:
    """The domain classifier's probability of each exported image's label, as the export wrote it (the
    npz format's `confidences`, what the export's min_confidence filters on)."""
    import numpy as np
    import torch

    from handwriting_gan.data.exports import NPZ_FILE

    path = export_dir / NPZ_FILE
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return torch.from_numpy(arrays["confidences"].astype(np.float32))
    except (OSError, ValueError, KeyError) as error:
        raise DataError(
            f"{path} holds no confidences ({error}); remove {export_dir} and run the study again to "
            f"export it anew."
        ) from None


def instantiate_classical(plan):
    """`classical`, built (the study builds it once before any work, so that a mistake in it is found
    first)."""
    from hydra.errors import InstantiationException

    from handwriting_gan.config import instantiate

    try:
        transform = instantiate(plan.classical)
    except InstantiationException as error:
        raise ConfigError(f"classical cannot be built: {str(error).splitlines()[0]}") from None
    if not callable(transform):
        raise ConfigError(f"classical builds a {type(transform).__name__}, which is not a transform.")
    return transform
