"""`dataset=expanded`: a real dataset's training split plus a synthetic export of it (any format the export
command writes), mixed at `synthetic_ratio`; the test split is the real dataset's, untouched.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from handwriting_gan.data.base import ImageDataModule
from handwriting_gan.data.exports import Export, read_export
from handwriting_gan.errors import ConfigError, DataError

log = logging.getLogger(__name__)

# Mixed into the seed of the synthetic images' draw, so it is independent of the `per_class` draw.
SYNTHETIC_STREAM = 2


class ExpandedDataModule(ImageDataModule):
    """`real`'s training split plus `synthetic_ratio` synthetic images per real one from the export at
    `synthetic` (None: all of them), picked by `seed`; a smaller ratio picks a subset of a larger one.

    Labels keep their meaning: the export's class names must be `real`'s. When `real` keeps only some
    classes (`dataset.real.classes`), so does the synthetic part. `classes` and `per_class` of this
    module apply on top, to the mixed training split, as for any dataset.
    """

    def __init__(
        self, real: ImageDataModule, synthetic: str | None, synthetic_ratio: float | None = 1.0, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(real, ImageDataModule):
            raise ConfigError(
                f"dataset.real must be a dataset config with a _target_ (got {type(real).__name__}); choose "
                f"one with dataset@dataset.real=<name>, e.g. dataset@dataset.real=mnist."
            )
        if synthetic is None or not str(synthetic).strip():
            raise ConfigError(
                "dataset.synthetic=<export> is required: the out folder of `python -m "
                "handwriting_gan.export` (any format) or the dataset.npz inside it, e.g. "
                "dataset.synthetic=outputs/default/<time>/export."
            )
        if synthetic_ratio is not None and (
            isinstance(synthetic_ratio, bool)
            or not isinstance(synthetic_ratio, int | float)
            or synthetic_ratio < 0
        ):
            raise ConfigError(
                f"dataset.synthetic_ratio={synthetic_ratio} must be a number of synthetic images per real "
                f"training image, 0 or more (e.g. 1.0), or null to add the whole export."
            )
        if tuple(real.image_shape) != self.image_shape:
            raise ConfigError(
                f"dataset.image_shape={list(self.image_shape)} differs from dataset.real.image_shape="
                f"{list(real.image_shape)}; leave it as ${{.real.image_shape}}."
            )
        self.real = real
        self.synthetic = Path(str(synthetic)).expanduser()
        self.synthetic_ratio = None if synthetic_ratio is None else float(synthetic_ratio)
        self._export: Export | None = None

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.real.class_names)

    def reference_data(self) -> ImageDataModule:
        """Measured against the real dataset alone: synthetic images never train the domain classifier."""
        return self.real.reference_data()

    def export(self) -> Export:
        """The export at `synthetic`, read once, checked against the real dataset."""
        if self._export is None:
            export = read_export(self.synthetic)
            if export.synthetic is not None:
                # An expanded folder holds the user's real images too: only its synthetic ones add to real.
                keep = export.synthetic
                export = Export(export.images[keep], export.labels[keep], export.class_names, export.format)
            if export.class_names != self.class_names:
                raise DataError(
                    f"dataset.synthetic={self.synthetic} has classes {_names(export.class_names)} but "
                    f"dataset.real ({type(self.real).__name__}) has {_names(self.class_names)}; expand a "
                    f"dataset with an export of a run trained on that dataset."
                )
            if len(export.images) and tuple(export.images.shape[1:]) != self.image_shape:
                raise DataError(
                    f"dataset.synthetic={self.synthetic} holds {list(export.images.shape[1:])} images but "
                    f"dataset.real has {list(self.image_shape)}; export from a run trained on that dataset."
                )
            self._export = export
        return self._export

    def _load(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if not train:
            return self.real.split(train=False)
        export = self.export()  # before the real data: a mismatched export fails fast
        images, labels = self.real.split(train=True)
        wanted = torch.isin(export.labels, torch.tensor(self.real.selected_labels, dtype=torch.int64))
        available = torch.nonzero(wanted).flatten()
        chosen = available[self._pick(len(images), len(available))]
        log.info(
            "dataset=expanded: %d real and %d synthetic training images (%s)",
            len(images),
            len(chosen),
            self.synthetic,
        )
        return torch.cat([images, export.images[chosen]]), torch.cat([labels, export.labels[chosen]])

    def _pick(self, num_real: int, num_available: int) -> torch.Tensor:
        """Sorted positions of the synthetic images to add, out of `num_available`."""
        if self.synthetic_ratio is None:
            return torch.arange(num_available)
        wanted = round(self.synthetic_ratio * num_real)
        if wanted > num_available:
            raise DataError(
                f"dataset.synthetic_ratio={self.synthetic_ratio:g} asks for {wanted} synthetic images "
                f"({self.synthetic_ratio:g} per real training image, of which there are {num_real}), but "
                f"dataset.synthetic={self.synthetic} holds {num_available} of the selected classes. Use "
                f"dataset.synthetic_ratio={num_available / max(num_real, 1):.4g} or less, null for all of "
                f"them, or export more images (num_samples={wanted})."
            )
        order = np.random.default_rng([self.seed % 2**63, SYNTHETIC_STREAM]).permutation(num_available)
        return torch.sort(torch.from_numpy(order[:wanted])).values


def _is_count(value) -> bool:
    """A number of 0 or more (bool excluded: YAML's true is not a ratio)."""
    return not isinstance(value, bool) and isinstance(value, int | float) and value >= 0


def _names(names: tuple[str, ...]) -> str:
    shown = " ".join(names[:12]) + (f" ... ({len(names)} in all)" if len(names) > 12 else "")
    return f"[{shown}]"
