"""Datasets as LightningDataModules that hold their images in memory as uint8 tensors."""

from handwriting_gan.data.base import ImageDataModule

__all__ = ["ImageDataModule"]
