"""What the domain classifier says about generated samples: how they spread over the classes (mode
collapse shows as low entropy), and whether a class-conditional generator draws the class it was asked."""

from __future__ import annotations

import math

import torch


def class_coverage(predictions: torch.Tensor, num_classes: int) -> dict:
    """The histogram of predicted classes, its entropy (nats; ln(num_classes) when uniform) and the
    number of classes that receive at least half their fair share (num_samples / num_classes / 2)."""
    histogram = torch.bincount(predictions.cpu(), minlength=num_classes).double()
    shares = histogram / histogram.sum()
    present = shares[shares > 0]
    fair_share = len(predictions) / num_classes
    return {
        "class_entropy": float(-(present * present.log()).sum()) + 0.0,  # + 0.0: no "-0.0" for one class
        "class_entropy_max": math.log(num_classes),
        "classes_covered": int((histogram >= 0.5 * fair_share).sum()),
        "num_classes": int(num_classes),
        "class_histogram": [int(count) for count in histogram.tolist()],
    }


def label_agreement(predictions: torch.Tensor, requested: torch.Tensor) -> float:
    """Share of generated samples that the domain classifier assigns to the class they were drawn for."""
    return float((predictions.cpu() == requested.cpu()).double().mean())
