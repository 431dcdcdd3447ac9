"""The in-memory image DataModule every dataset builds on, and the seeded batch sampler it uses.

A dataset is loaded once into a uint8 tensor (N, C, H, W) with int64 labels. Batches are cut from
that tensor by index in one operation and scaled to [-1, 1] after the transfer to the device, so the
training loop never touches PIL or per-image transforms.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import lightning as L
import torch
from torch.utils.data import DataLoader, Sampler, TensorDataset

from handwriting_gan.errors import ConfigError, DataError


class ShuffledBatches(Sampler[torch.Tensor]):
    """Yields index tensors of whole batches, shuffled by a generator seeded from (seed, epoch).

    The order of epoch `e` depends only on `seed` and `e`, so a run resumed at an epoch boundary sees
    exactly the batches the uninterrupted run saw. Under DDP each rank takes every world_size-th batch.
    """

    def __init__(self, num_items: int, batch_size: int, seed: int, drop_last: bool = True) -> None:
        self.num_items = num_items
        self.batch_size = batch_size
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

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
        rank, world = self._rank_and_world()
        for batch in range(rank, len(self) * world, world):
            yield order[batch * self.batch_size : (batch + 1) * self.batch_size]


class ImageDataModule(L.LightningDataModule):
    """Base for every dataset: subclasses implement `_load(train)` returning uint8 images and labels."""

    #: Shown under sample grids and used as exported folder names; subclasses set it.
    class_names: Sequence[str] = ()

    def __init__(
        self,
        batch_size: int,
        image_shape: Sequence[int],
        sample_grid: int,
        seed: int = 0,
        drop_last: bool = True,
    ) -> None:
        super().__init__()
        if int(batch_size) <= 0:
            raise ConfigError(f"dataset.batch_size={batch_size} must be a positive integer.")
        if int(sample_grid) <= 0:
            raise ConfigError(f"dataset.sample_grid={sample_grid} must be a positive integer.")
        if len(image_shape) != 3 or any(int(s) <= 0 for s in image_shape):
            raise ConfigError(
                f"dataset.image_shape={list(image_shape)} must be three positive sizes [C, H, W]."
            )
        self.batch_size = int(batch_size)
        self.image_shape = tuple(int(s) for s in image_shape)
        self.sample_grid = int(sample_grid)
        self.seed = int(seed)
        self.drop_last = drop_last
        self._splits: dict[bool, tuple[torch.Tensor, torch.Tensor]] = {}

    # -- what a subclass provides -------------------------------------------------------------
    def _load(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (uint8 images of shape (N, C, H, W) or (N, H, W), int64 labels of shape (N,))."""
        raise NotImplementedError

    # -- splits --------------------------------------------------------------------------------
    def split(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The training (GAN) or held-out test split as (uint8 images (N,C,H,W), int64 labels)."""
        if train not in self._splits:
            images, labels = self._load(train)
            if images.ndim == 3:
                images = images.unsqueeze(1)
            if images.dtype != torch.uint8:
                raise DataError(f"{type(self).__name__} produced {images.dtype} images, not uint8.")
            if tuple(images.shape[1:]) != self.image_shape:
                raise DataError(
                    f"{type(self).__name__} images have shape {list(images.shape[1:])} but "
                    f"dataset.image_shape={list(self.image_shape)}; set dataset.image_shape to match."
                )
            if len(images) != len(labels):
                raise DataError(f"{type(self).__name__}: {len(images)} images but {len(labels)} labels.")
            self._splits[train] = (images.contiguous(), labels.to(torch.int64))
        return self._splits[train]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def setup(self, stage: str | None = None) -> None:
        images, _ = self.split(train=True)
        if len(images) < self.batch_size and self.drop_last:
            raise ConfigError(
                f"dataset.batch_size={self.batch_size} is larger than the {len(images)} training "
                f"images of {type(self).__name__}; use a batch size of at most {len(images)}."
            )

    def train_dataloader(self) -> DataLoader:
        images, labels = self.split(train=True)
        sampler = ShuffledBatches(len(images), self.batch_size, self.seed, self.drop_last)
        # batch_size=None: the sampler yields whole index batches, fetched with one tensor index.
        return DataLoader(TensorDataset(images, labels), sampler=sampler, batch_size=None)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        images, labels = batch
        return to_signed_unit(images), labels


def to_signed_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1], the generator's tanh range."""
    return images.float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255], the inverse of `to_signed_unit` (clamped)."""
    return images.add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)
