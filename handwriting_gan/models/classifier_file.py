"""`classifier.pt`: a discriminator that classifies (the semi-supervised GAN's), kept as a classifier with
everything needed to rebuild it without the run, and what labels images with it from Python:

    from handwriting_gan.models.classifier_file import load_classifier
    classifier = load_classifier("outputs/.../classifier.pt")
    labels, confidence = classifier.label(images)   # uint8 (N, 1, 28, 28) or float in [-1, 1]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig

from handwriting_gan.models.contract import ClassifyingDiscriminator
from handwriting_gan.models.generator_file import read_network_file, write_network_file

FORMAT = "handwriting_gan.classifier"
FORMAT_VERSION = 1
# Images per forward pass when labelling: large batches keep a small MLP's matrix products efficient.
BATCH = 4096


@dataclass
class ImageClassifier:
    """A discriminator in eval mode with the class names of its labels."""

    network: ClassifyingDiscriminator
    class_names: tuple[str, ...]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.network.image_shape

    @torch.no_grad()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits (N, K) of uint8 images in [0, 255] or float images in [-1, 1], (N, C, H, W)."""
        if tuple(images.shape[1:]) != tuple(self.image_shape):
            raise ValueError(
                f"the classifier takes images of shape (N, *{list(self.image_shape)}); "
                f"got {tuple(images.shape)}."
            )
        device = next(self.network.parameters()).device
        parts = []
        for start in range(0, len(images), BATCH):
            batch = images[start : start + BATCH].to(device)
            if batch.dtype == torch.uint8:
                batch = batch.float().div_(127.5).sub_(1.0)
            parts.append(self.network.classify(batch)[0].float().cpu())
        return torch.cat(parts) if parts else torch.zeros(0, self.network.num_labels)

    def label(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(labels (N,) int64, confidence (N,): the softmax probability of that label)."""
        probabilities = torch.softmax(self.logits(images), dim=1)
        confidence, labels = probabilities.max(dim=1)
        return labels, confidence

    def score(self, images: torch.Tensor, labels: torch.Tensor) -> dict:
        """Accuracy and error on labelled `images`, and the accuracy of each class that has images (by
        class name): what `evaluate` reports on the test split."""
        predicted = self.label(images)[0]
        right = predicted == labels
        per_class = {
            str(name): round(right[labels == label].float().mean().item(), 6)
            for label, name in enumerate(self.class_names)
            if (labels == label).any()
        }
        accuracy = right.float().mean().item() if len(labels) else float("nan")
        return {
            "test_accuracy": round(accuracy, 6),
            "test_error": round(1.0 - accuracy, 6),
            "test_images": len(labels),
            "per_class_accuracy": per_class,
        }


def save_classifier(
    path: str | Path,
    network: ClassifyingDiscriminator,
    config: DictConfig | dict,
    class_names: list[str] | tuple[str, ...],
) -> Path:
    """Write the network's weights, its `_target_` config and the class names of its labels atomically."""
    return write_network_file(
        path,
        FORMAT,
        FORMAT_VERSION,
        network,
        config,
        image_shape=list(network.image_shape),
        class_names=[str(name) for name in class_names],
    )


def load_classifier(path: str | Path) -> ImageClassifier:
    """The classifier stored at `path`, in eval mode on the CPU; CheckpointError naming the problem."""
    network, metadata = read_network_file(
        path, FORMAT, FORMAT_VERSION, "classifier", missing="a finished run of model=ssgan_mlp leaves one."
    )
    return ImageClassifier(network, tuple(metadata["class_names"]))
