"""Warm start: a new run begins from the weights of an earlier run, `init_from=<run folder>`, e.g. a
conditional DCGAN pretrained on other classes (another alphabet, another dataset) and fine-tuned on a
few images per class of its own.

Every tensor of G and D whose name and shape match is copied from the earlier run's
`checkpoints/last.ckpt`; the others keep their fresh initialisation, typically the class embeddings
when the two datasets have different numbers of classes. Nothing else carries over: the optimizers'
states, the step counts and the EMA average start afresh (the average follows the loaded weights
until `model.ema_start`). A resumed run continues from its own checkpoint and ignores `init_from`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from handwriting_gan.errors import CheckpointError
from handwriting_gan.runs import RunFolder

if TYPE_CHECKING:  # torch loads only when weights are copied (the command line's checks stay quick)
    from torch import nn

#: The players whose weights carry over; the EMA copy of G is rebuilt from G (see the module doc).
PLAYERS = ("generator", "discriminator")


@dataclass(frozen=True)
class WarmStart:
    """What `warm_start` did: the checkpoint it read, the tensors it copied and those left fresh
    (with the shapes there and here)."""

    source: Path
    loaded: tuple[str, ...]
    fresh: tuple[tuple[str, tuple[int, ...] | None, tuple[int, ...]], ...]

    def summary(self) -> str:
        """One line for the console."""
        total = len(self.loaded) + len(self.fresh)
        line = f"init_from: {len(self.loaded)} of {total} weight tensors of G and D from {self.source}"
        if not self.fresh:
            return line
        parts = [
            f"{name} (not there)" if there is None else f"{name} ({list(there)} there, {list(here)} here)"
            for name, there, here in self.fresh
        ]
        return f"{line}; fresh: {', '.join(parts)}"


def source_checkpoint(init_from: str | Path) -> Path:
    """The checkpoint `init_from` names (a run folder), or a CheckpointError saying what to pass instead."""
    run = RunFolder(init_from)
    run.require_run("init_from")
    if not run.checkpoint.is_file():
        raise CheckpointError(
            f"init_from={init_from} has no checkpoints/last.ckpt (the run ended before its first "
            f"checkpoint); pass a run that trained for at least one checkpoint interval."
        )
    return run.checkpoint


def warm_start(game: nn.Module, init_from: str | Path) -> WarmStart:
    """Copy into `game` (the GAN LightningModule) every weight of G and D from the run `init_from`
    whose name and shape match. Raises CheckpointError when none of G's weights fit (another architecture:
    warm-starting would silently train from scratch)."""
    import torch

    from handwriting_gan.callbacks.checkpoint import load_checkpoint

    path = source_checkpoint(init_from)
    found = load_checkpoint(path)["state_dict"]
    own = game.state_dict()
    loaded = {}
    fresh = []
    for name, tensor in own.items():
        if name.split(".", 1)[0] not in PLAYERS:
            continue
        there = found.get(name)
        if there is not None and there.shape == tensor.shape:
            loaded[name] = there
        else:
            fresh.append((name, None if there is None else tuple(there.shape), tuple(tensor.shape)))
    if not any(name.startswith("generator.") for name in loaded):
        raise CheckpointError(
            f"init_from={init_from}: none of its generator's weights fit this run's generator (another "
            f"model or model size). Warm-start from a run of the same model group and sizes; only "
            f"num_classes may differ."
        )
    with torch.no_grad():
        for name, tensor in loaded.items():
            own[name].copy_(tensor)
    return WarmStart(source=path, loaded=tuple(loaded), fresh=tuple(fresh))
