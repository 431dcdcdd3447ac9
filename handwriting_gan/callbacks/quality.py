"""Quality metrics during training: domain-feature FD (and optionally more) every n epochs.

Values are logged as `quality/<name>` (TensorBoard, `trainer.callback_metrics`), so a sweep can
optimise them with `optimized_metric=quality/fd`. Off unless `every_n_epochs` is positive.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import lightning as L

from handwriting_gan.errors import ConfigError
from handwriting_gan.metrics.cache import load_or_train
from handwriting_gan.metrics.classifier import ClassifierSettings
from handwriting_gan.metrics.report import RealReference, check_groups, quality_metrics
from handwriting_gan.metrics.sampling import draw_samples

#: Bookkeeping values of a report that would only clutter TensorBoard.
NOT_LOGGED = {
    "class_histogram",
    "class_entropy_max",
    "num_classes",
    "kid_subset_size",
    "cas_num_generated",
    "cas_num_real",
    "per_class_classes",
    "per_class_recall_classes",
}


class QualityMetrics(L.Callback):
    """Every `every_n_epochs` epochs (and after the last one), draws `num_samples` images from the
    same noise and measures the `metrics` groups of handwriting_gan.metrics.report against the test
    split. `quality/fd_floor` (real training vs real test images at the same sample size) is logged
    beside FD. The dataset's domain classifier is trained once and cached under `cache_dir`."""

    def __init__(
        self,
        every_n_epochs: int = 0,
        num_samples: int = 2000,
        metrics: Sequence[str] = ("fd",),
        cache_dir: str = "cache",
        seed: int = 0,
        classifier: Mapping | None = None,
        batch_size: int = 500,
    ) -> None:
        if int(every_n_epochs) < 0:
            raise ConfigError(
                f"callbacks.quality.every_n_epochs={every_n_epochs} must be 0 (off) or a positive number."
            )
        if int(num_samples) < 10:
            raise ConfigError(f"callbacks.quality.num_samples={num_samples} must be at least 10.")
        self.every_n_epochs = int(every_n_epochs)
        self.num_samples = int(num_samples)
        self.metrics = check_groups(metrics)
        self.cache_dir = cache_dir
        self.seed = int(seed)
        self.settings = ClassifierSettings.from_mapping(classifier)
        self.batch_size = int(batch_size)
        self.reference: RealReference | None = None
        self.fd_floor: float | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.every_n_epochs:
            return
        datamodule = trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "split"):
            raise ConfigError("callbacks.quality needs the run's dataset as an ImageDataModule.")
        device = trainer.strategy.root_device
        # One process trains and caches the classifier; the others then find it in the cache.
        if trainer.is_global_zero:
            load_or_train(datamodule, self.cache_dir, self.settings, device)
        trainer.strategy.barrier("quality_classifier")
        cached = load_or_train(datamodule, self.cache_dir, self.settings, device)
        self.reference = RealReference(datamodule, cached, device)
        if "fd" in self.metrics:
            self.fd_floor = self.reference.fd_floor(self.num_samples, self.seed)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.every_n_epochs or self.reference is None:
            return
        epoch = trainer.current_epoch + 1
        if epoch % self.every_n_epochs and epoch != trainer.max_epochs:
            return
        images, requested = draw_samples(
            pl_module.sampling_generator, self.num_samples, pl_module.latent_dim, self.seed, self.batch_size
        )
        values = quality_metrics(
            self.reference, images, requested, self.metrics, seed=self.seed, cas_settings=self.settings
        )
        if self.fd_floor is not None:
            values["fd_floor"] = self.fd_floor
        values["classifier_test_acc"] = self.reference.classifier_test_acc
        for name, value in values.items():
            if name not in NOT_LOGGED:
                pl_module.log(f"quality/{name}", float(value), on_step=False, on_epoch=True)
