"""What `out` holds: the expanded dataset (the real images, then the synthetic ones) in the export formats
of handwriting_gan.data.exports, each image marked real or synthetic; export.json, its manifest; and
samples.png, each class's real images beside their variations."""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from handwriting_gan import __version__
from handwriting_gan.callbacks.samples import captioned_grid
from handwriting_gan.data.exports import NPZ_FILE, Samples, class_folders, write_export

SAMPLES_FILE = "samples.png"
#: samples.png's cells are the images enlarged this many times; the class names take this many pixels.
SCALE, NAME_WIDTH = 2, 72


@dataclass(frozen=True)
class Expanded:
    """The expanded dataset: uint8 images (N, C, H, W), labels, and per image whether it is synthetic and
    the index of the real image it was made from (-1 for a real one). The real images come first."""

    images: torch.Tensor
    labels: torch.Tensor
    synthetic: torch.Tensor
    sources: torch.Tensor

    @classmethod
    def of(
        cls, real: tuple[torch.Tensor, torch.Tensor], made: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    ) -> Expanded:
        """`real` (images, labels) followed by `made` (images, labels, index of each one's real image)."""
        (images, labels), (made_images, made_labels, made_sources) = real, made
        return cls(
            torch.cat([images, made_images]),
            torch.cat([labels, made_labels]),
            torch.cat(
                [torch.zeros(len(labels), dtype=torch.bool), torch.ones(len(made_labels), dtype=torch.bool)]
            ),
            torch.cat([torch.full((len(labels),), -1, dtype=torch.int64), made_sources.to(torch.int64)]),
        )

    @property
    def num_real(self) -> int:
        return int((~self.synthetic).sum())

    def samples(self) -> Samples:
        """As the export formats take it: the position is the file name; every label is certain (a
        variation keeps its real image's class), so every confidence is 1."""
        return Samples(self.images, self.labels, torch.ones(len(self.labels)), torch.arange(len(self.labels)))

    def class_counts(self, class_names: Sequence[str]) -> dict[str, dict[str, int]]:
        """{class folder name: {"real", "synthetic"}} in label order."""
        real = torch.bincount(self.labels[~self.synthetic], minlength=len(class_names)).tolist()
        made = torch.bincount(self.labels[self.synthetic], minlength=len(class_names)).tolist()
        return {
            name: {"real": r, "synthetic": s}
            for name, r, s in zip(class_folders(class_names), real, made, strict=True)
        }


def write_dataset(folder: Path, fmt: str, expanded: Expanded, class_names: Sequence[str]) -> None:
    """The images in `fmt` (data/exports.py's writers); npz also gets the arrays `synthetic` (bool) and
    `source` (int64, -1 for a real image)."""
    write_export(folder, fmt, expanded.samples(), class_names)
    if fmt == "npz":
        # An .npz is a zip of .npy files: the two arrays join the export's own.
        with zipfile.ZipFile(folder / NPZ_FILE, "a", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, array in (("synthetic", expanded.synthetic), ("source", expanded.sources)):
                with archive.open(f"{name}.npy", "w") as handle:
                    np.lib.format.write_array(handle, array.numpy())


def image_records(
    expanded: Expanded, class_names: Sequence[str], fmt: str, originals: Sequence[str]
) -> list[dict[str, Any]]:
    """Per image: its index (and file, for imagefolder), label, class, and either the file of the user's
    folder it was converted from (a real one) or the index of the real image it was made from."""
    folders = class_folders(class_names)
    records = []
    for index, (label, synthetic, source) in enumerate(
        zip(expanded.labels.tolist(), expanded.synthetic.tolist(), expanded.sources.tolist(), strict=True)
    ):
        record: dict[str, Any] = {"index": index}
        if fmt == "imagefolder":
            record["file"] = f"{folders[label]}/{index:06d}.png"
        record.update(label=label, class_name=str(class_names[label]), synthetic=synthetic)
        if synthetic:
            record["source"] = source
        else:
            record["original"] = originals[index]
        records.append(record)
    return records


def manifest(
    *,
    fmt: str,
    source_folder: Path,
    class_names: Sequence[str],
    expanded: Expanded,
    originals: Sequence[str],
    skipped: Sequence[dict[str, str]],
    augmenter: dict[str, Any],
    settings: dict[str, Any],
    measurement: dict[str, Any] | None,
) -> dict[str, Any]:
    """export.json: what read_export needs (format, class_names, num_samples_kept), then the provenance."""
    return {
        "format": fmt,
        "class_names": [str(name) for name in class_names],
        "num_samples_kept": len(expanded.labels),
        "command": "handwriting_gan.expand",
        "source_folder": str(source_folder.resolve()),
        "num_real": expanded.num_real,
        "num_synthetic": len(expanded.labels) - expanded.num_real,
        "class_counts": expanded.class_counts(class_names),
        "skipped_files": list(skipped),
        "augmenter": augmenter,
        "settings": settings,
        "measurement": measurement,
        "package_version": __version__,
        "images": image_records(expanded, class_names, fmt, originals),
    }


def samples_sheet(expanded: Expanded, class_names: Sequence[str], shown: int, variations: int) -> Image.Image:
    """One row per class, its name on the left: `shown` real images, each followed by `variations` of the
    synthetic images made from it (blank where there are fewer)."""
    blank = torch.zeros_like(expanded.images[0])
    cells, captions = [], []
    for label in range(len(class_names)):
        real = torch.nonzero((expanded.labels == label) & ~expanded.synthetic).flatten()[:shown].tolist()
        for slot in range(shown):
            made = []
            if slot < len(real):
                made = torch.nonzero(expanded.sources == real[slot]).flatten()[:variations].tolist()
            cells.append(expanded.images[real[slot]] if slot < len(real) else blank)
            captions.append("real" if slot < len(real) else "")
            for k in range(variations):
                cells.append(expanded.images[made[k]] if k < len(made) else blank)
                captions.append("synthetic" if k < len(made) else "")
    grid = captioned_grid(torch.stack(cells), captions, nrow=shown * (1 + variations), scale=SCALE)
    sheet = Image.new(grid.mode, (grid.width + NAME_WIDTH, grid.height), 0)
    sheet.paste(grid, (NAME_WIDTH, 0))
    draw = ImageDraw.Draw(sheet)
    row_height = grid.height // len(class_names)
    white = 255 if grid.mode == "L" else (255,) * 3
    for label, name in enumerate(class_names):
        draw.text((4, label * row_height + row_height // 2 - 6), str(name)[:11], fill=white)
    return sheet
