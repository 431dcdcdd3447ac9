"""Batch order: seeded, shuffled batches of indices whose place in the epoch goes into checkpoints, so a
resumed run draws the very batches the uninterrupted run would have drawn. Plain batches, pairs of one
class (for an image-conditional augmenter) and labelled + unlabelled halves (for the semi-supervised game).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Sampler


class ShuffledBatches(Sampler[torch.Tensor]):
    """Yields index tensors of whole batches, shuffled by a generator seeded from (seed, epoch).

    The order of epoch `e` depends only on `seed` and `e`, and checkpoints keep how many batches of the
    epoch were trained (`state_dict`, through ResumableLoader), so a run resumed at an epoch boundary or
    inside an epoch sees exactly the batches the uninterrupted run saw. Under DDP each rank takes every
    world_size-th batch.
    """

    def __init__(
        self,
        num_items: int,
        batch_size: int,
        seed: int,
        drop_last: bool = True,
        device: torch.device | str | None = None,
    ) -> None:
        """`device`: where the index batches are yielded (the device holding the images, so that a
        GPU-resident dataset is cut on the GPU). The order is drawn on the CPU either way: the same seed
        gives the same batches on every device."""
        self.num_items = num_items
        self.batch_size = batch_size
        self.seed = seed
        self.drop_last = drop_last
        self.device = None if device is None else torch.device(device)
        self.epoch = 0
        #: Batches of `epoch` the training loop has taken (ImageDataModule counts them as they reach the
        #: loop; the loader itself runs a batch ahead of it).
        self.taken = 0
        self._resume_at: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "taken": self.taken}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume_at = (int(state["epoch"]), int(state["taken"]))

    def _rank_and_world(self) -> tuple[int, int]:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def _num_batches_total(self) -> int:
        if self.drop_last:
            return self.num_items // self.batch_size
        return math.ceil(self.num_items / self.batch_size)

    def __len__(self) -> int:
        _, world = self._rank_and_world()
        return self._num_batches_total() // world if world > 1 else self._num_batches_total()

    def __iter__(self) -> Iterator[torch.Tensor]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.num_items, generator=generator)
        if self.device is not None:
            order = order.to(self.device)
        for batch in self._batch_numbers():
            yield order[batch * self.batch_size : (batch + 1) * self.batch_size]

    def _batch_numbers(self) -> Iterator[int]:
        """The epoch's batches this rank trains, by number, after those a resumed epoch already trained."""
        rank, world = self._rank_and_world()
        # After a checkpoint from inside this epoch, skip the batches trained before it.
        skip = self._resume_at[1] if self._resume_at and self._resume_at[0] == self.epoch else 0
        self._resume_at, self.taken = None, skip
        yield from range(rank + skip * world, len(self) * world, world)


class PairedBatches(ShuffledBatches):
    """ShuffledBatches of pairs for an image-conditional augmenter: each batch is a (2, B) index tensor,
    row 0 the images in the epoch's shuffled order, row 1 for each of them another image of its class
    (drawn from the same (seed, epoch) generator, so resumed epochs pair as the uninterrupted run did).
    A class of one image pairs it with itself."""

    def __init__(self, labels: torch.Tensor, batch_size: int, seed: int, drop_last: bool = True, device=None):
        super().__init__(len(labels), batch_size, seed, drop_last, device)
        labels = labels.cpu()
        self.by_class = torch.argsort(labels, stable=True)
        counts = torch.bincount(labels)
        starts = torch.cumsum(counts, 0) - counts
        self.class_start = starts[labels]
        self.class_size = counts[labels]
        self.rank = torch.empty_like(self.by_class)
        self.rank[self.by_class] = torch.arange(len(labels)) - starts[labels[self.by_class]]

    def partners(self, generator: torch.Generator) -> torch.Tensor:
        """For every image, another image of its class: a random step of 1 .. size-1 along the class."""
        step = (torch.rand(self.num_items, generator=generator) * (self.class_size - 1)).long() + 1
        rank = (self.rank + step) % self.class_size
        return self.by_class[self.class_start + rank]

    def __iter__(self) -> Iterator[torch.Tensor]:
        # Its own stream, apart from the order's: the same anchors in the same order as unpaired batches.
        partners = self.partners(torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) ^ 0x5EED))
        if self.device is not None:
            partners = partners.to(self.device)
        for anchors in super().__iter__():
            yield torch.stack([anchors, partners[anchors]])


class SemiSupervisedBatches(ShuffledBatches):
    """Batches of `batch_size` labelled and `batch_size` unlabelled images for the semi-supervised game,
    as one index tensor of 2 * batch_size: labelled items are 0 .. num_labelled - 1, unlabelled ones
    follow. An epoch is one pass over the larger of the two sets; the smaller is cycled, each pass in a new
    order. Both orders come from (seed, epoch) alone, so a resumed epoch sees the uninterrupted run's
    batches (ShuffledBatches keeps the place in the epoch)."""

    def __init__(self, num_labelled: int, num_unlabelled: int, batch_size: int, seed: int, device=None):
        super().__init__(max(num_labelled, num_unlabelled), batch_size, seed, drop_last=True, device=device)
        self.num_labelled, self.num_unlabelled = num_labelled, num_unlabelled

    def _cycled(self, size: int, generator: torch.Generator) -> torch.Tensor:
        wanted = len(self) * self.batch_size * max(1, self._rank_and_world()[1])
        passes = -(-wanted // size)
        return torch.cat([torch.randperm(size, generator=generator) for _ in range(passes)])

    def __iter__(self) -> Iterator[torch.Tensor]:
        generator = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) ^ 0x5EED5)
        labelled = self._cycled(self.num_labelled, generator)
        unlabelled = self._cycled(self.num_unlabelled, generator) + self.num_labelled
        if self.device is not None:
            labelled, unlabelled = labelled.to(self.device), unlabelled.to(self.device)
        size = self.batch_size
        for batch in self._batch_numbers():
            part = slice(batch * size, (batch + 1) * size)
            yield torch.cat([labelled[part], unlabelled[part]])


class ResumableLoader(DataLoader):
    """A DataLoader whose place in the epoch goes into checkpoints: Lightning saves the `state_dict` of
    every training loader that has one, and hands it back to `load_state_dict` on resume."""

    def state_dict(self) -> dict[str, int]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.load_state_dict(state)
