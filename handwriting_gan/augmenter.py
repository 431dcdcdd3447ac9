"""Augmenters by name: what turns a few real images per class into more, for the study's arms (f) and (g)
and for `python -m handwriting_gan.expand`.

An augmenter is a trained generator file (`generator.pt`, models/generator_file.py), either
- image-conditional (model=dagan): each new image is a variation of one real image, drawn by
  G(z, source); it knows no classes, so it applies to any dataset of the image size it was trained at;
- or class-conditional (a conditional GAN run of this project): each new image is drawn for a class,
  G(z, label); its classes must be the dataset's.

`augmenter=<name>` names a shipped one (SHIPPED: inside the package, loaded with no network), a run
folder or a generator file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from handwriting_gan.data.base import to_signed_unit, to_uint8
from handwriting_gan.errors import CheckpointError, ConfigError
from handwriting_gan.models.contract import image_conditional

#: The augmenters shipped inside the package, by name: `handwriting_gan/augmenters/<name>.pt`, each
#: written by the command its entry of docs/guide/augmenter.md gives.
SHIPPED = {
    "omniglot": "omniglot.pt",
}
#: The folder of the shipped weights inside the package.
SHIPPED_FOLDER = "augmenters"


def shipped_path(name: str) -> Path:
    """The file of the shipped augmenter `name`."""
    return Path(str(resources.files("handwriting_gan") / SHIPPED_FOLDER / SHIPPED[name]))


def augmenter_file(spec: str | Path) -> Path:
    """The generator file `spec` names: a shipped augmenter's name, a run folder (its generator.pt) or a
    generator file; CheckpointError when there is none."""
    text = str(spec)
    if text in SHIPPED:
        path = shipped_path(text)
        if not path.is_file():
            raise CheckpointError(
                f"the shipped augmenter {text!r} is missing from this installation ({path}); reinstall the "
                f"package, or train it with `make augmenter` (docs/guide/augmenter.md)."
            )
        return path
    path = Path(text).expanduser()
    if path.is_dir():
        path = path / "generator.pt"
    if not path.is_file():
        raise CheckpointError(
            f"augmenter={text} is neither a shipped augmenter ({', '.join(SHIPPED)}) nor a finished run "
            f"folder or generator.pt file."
        )
    return path


@dataclass
class Augmenter:
    """A loaded augmenter: `vary(images, labels, copies, seed)` draws `copies` new images per real one."""

    generator: nn.Module
    metadata: dict[str, Any]
    #: What the user named (a shipped name or a path), for manifests and reports.
    spec: str
    batch_size: int = 1000
    device: str = "cpu"

    @classmethod
    def load(cls, spec: str | Path, device: str = "cpu") -> Augmenter:
        from handwriting_gan.models.generator_file import load_generator

        generator, metadata = load_generator(augmenter_file(spec))
        if not (image_conditional(generator) or getattr(generator, "num_classes", 0)):
            raise CheckpointError(
                f"augmenter={spec} is an unconditional generator: it cannot say which class an image is. "
                f"Use an image-conditional augmenter (model=dagan) or a class-conditional run (e.g. "
                f"model=cdcgan)."
            )
        return cls(generator.to(device), metadata, str(spec), device=device)

    @property
    def image_conditional(self) -> bool:
        return image_conditional(self.generator)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.generator.image_shape)

    @property
    def class_names(self) -> tuple[str, ...]:
        """The classes of a class-conditional augmenter (empty for an image-conditional one)."""
        return () if self.image_conditional else tuple(self.metadata.get("class_names", ()))

    def describe(self) -> dict[str, Any]:
        """What a manifest records of the augmenter."""
        return {
            "augmenter": self.spec,
            "kind": "image-conditional" if self.image_conditional else "class-conditional",
            "generator": self.metadata.get("config", {}).get("_target_"),
            "latent_dim": int(self.generator.latent_dim),
            "image_shape": list(self.image_shape),
            "package_version": self.metadata.get("package_version"),
        }

    def check_fits(self, image_shape: Sequence[int], class_names: Sequence[str]) -> None:
        """ConfigError unless the augmenter makes images of `image_shape` (and, class-conditional, for
        exactly `class_names`)."""
        if tuple(image_shape) != self.image_shape:
            raise ConfigError(
                f"augmenter={self.spec} makes {list(self.image_shape)} images but the dataset's are "
                f"{list(image_shape)}; set the dataset's image size to {self.image_shape[-1]}."
            )
        if not self.image_conditional and tuple(class_names) != self.class_names:
            missing = sorted(set(class_names) - set(self.class_names))
            raise ConfigError(
                f"augmenter={self.spec} is class-conditional on {len(self.class_names)} classes, which are "
                f"not the dataset's {len(class_names)} (e.g. it lacks {missing[:5]}); use an "
                f"image-conditional augmenter (e.g. augmenter=omniglot) or a run trained on these classes."
            )

    @torch.no_grad()
    def vary(
        self, images: torch.Tensor, labels: torch.Tensor, copies: int, seed: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`copies` new uint8 images for each uint8 image (N, C, H, W) with int64 `labels`: (images,
        labels, the index of the real image each was made from). Copy k of image i is at k * N + i. The
        noise comes from its own generator seeded by `seed`: same seed, same images; the caller's random
        state is untouched."""
        n = len(images)
        if copies < 1 or n == 0:
            return images[:0], labels[:0], torch.zeros(0, dtype=torch.int64)
        random = torch.Generator().manual_seed(int(seed))
        source = torch.arange(n).repeat(copies)
        noise = torch.randn(len(source), int(self.generator.latent_dim), generator=random)
        was_training = self.generator.training
        self.generator.eval()
        made = []
        try:
            for start in range(0, len(source), self.batch_size):
                picks = source[start : start + self.batch_size]
                z = noise[start : start + self.batch_size].to(self.device)
                if self.image_conditional:
                    condition = to_signed_unit(images[picks]).to(self.device)
                else:
                    condition = labels[picks].to(self.device)
                made.append(to_uint8(self.generator(z, condition).float()).cpu())
        finally:
            self.generator.train(was_training)
        return torch.cat(made), labels[source], source
