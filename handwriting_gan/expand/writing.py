"""What `out` holds: the expanded dataset (the real images, then the synthetic ones) in the export formats
of handwriting_gan.data.exports, each image marked real or synthetic; export.json, its manifest; and
samples.png, each class's real images beside their variations; written whole (write_folder)."""

from __future__ import annotations

import csv
import json
import shutil
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from handwriting_gan import __version__
from handwriting_gan.callbacks.samples import captioned_grid
from handwriting_gan.data.exports import (
    EXPORT_FILE,
    LABELS_FILE,
    NPZ_FILE,
    Samples,
    class_folders,
    partial_folder,
    write_export,
)
from handwriting_gan.expand.progress import Progress
from handwriting_gan.expand.report import REPORT_JSON, REPORT_MD, markdown

if TYPE_CHECKING:
    from handwriting_gan.expand.reading import Folder
    from handwriting_gan.expand.settings import Plan

SAMPLES_FILE = "samples.png"
#: samples.png's cells are the images enlarged this many times; the class names take this many pixels.
SCALE, NAME_WIDTH = 2, 72


#: Where an image of the expanded dataset comes from; the `origin` array of the npz holds the position.
ORIGINS = ("labelled", "pseudo-labelled", "synthetic")
REVIEW_FILE = "review.png"


@dataclass(frozen=True)
class Expanded:
    """The expanded dataset: uint8 images (N, C, H, W), labels, and per image whether it is synthetic and
    the index of the real image it was made from (-1 for a real one). The real images come first. With a
    pool, the pool's images follow the labelled ones: `pool_index` is each one's index in the pool folder's
    sorted file list (-1 for others) and `confidence` its label's probability (1 for the others)."""

    images: torch.Tensor
    labels: torch.Tensor
    synthetic: torch.Tensor
    sources: torch.Tensor
    pool_index: torch.Tensor | None = None
    confidence: torch.Tensor | None = None

    @classmethod
    def with_pool(
        cls,
        real: tuple[torch.Tensor, torch.Tensor],
        pool: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
        made: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    ) -> Expanded:
        """The labelled `real` (images, labels), then the pool's (images, predicted labels, confidence,
        pool index), then the synthetic `made` (images, labels, the row of each one's source among the
        labelled and pool images), each with its source's confidence: its label is its source's."""
        (images, labels), (pool_images, pool_labels, confidence, pool_index) = real, pool
        if made is None:
            made = (images[:0], labels[:0], torch.zeros(0, dtype=torch.int64))
        n, m, k = len(labels), len(pool_labels), len(made[1])
        confidences = torch.cat([torch.ones(n), confidence.float()])
        return cls(
            torch.cat([images, pool_images, made[0]]),
            torch.cat([labels, pool_labels, made[1]]),
            torch.cat([torch.zeros(n + m, dtype=torch.bool), torch.ones(k, dtype=torch.bool)]),
            torch.cat([torch.full((n + m,), -1, dtype=torch.int64), made[2].to(torch.int64)]),
            torch.cat(
                [
                    torch.full((n,), -1, dtype=torch.int64),
                    pool_index.to(torch.int64),
                    torch.full((k,), -1, dtype=torch.int64),
                ]
            ),
            torch.cat([confidences, confidences[made[2]]]),
        )

    @property
    def origins(self) -> torch.Tensor:
        """Per image its position in ORIGINS (int8)."""
        origin = torch.where(self.synthetic, 2, 0).to(torch.int8)
        if self.pool_index is not None:
            origin[self.pool_index >= 0] = 1
        return origin

    @property
    def num_pool(self) -> int:
        return 0 if self.pool_index is None else int((self.pool_index >= 0).sum())

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
        """As the export formats take it: the position is the file name; a labelled image's or a
        variation's label is certain (confidence 1), a pool image's is the classifier's confidence."""
        confidence = torch.ones(len(self.labels)) if self.confidence is None else self.confidence
        return Samples(self.images, self.labels, confidence, torch.arange(len(self.labels)))

    def class_counts(self, class_names: Sequence[str]) -> dict[str, dict[str, int]]:
        """{class folder name: {"real", "synthetic"}} in label order."""
        origins = self.origins
        counts = {
            key: torch.bincount(self.labels[origins == code], minlength=len(class_names)).tolist()
            for key, code in (("real", 0), ("pseudo_labelled", 1), ("synthetic", 2))
        }
        if self.pool_index is None:
            del counts["pseudo_labelled"]
        return {
            name: {key: values[label] for key, values in counts.items()}
            for label, name in enumerate(class_folders(class_names))
        }


def write_dataset(
    folder: Path, fmt: str, expanded: Expanded, class_names: Sequence[str], pool_files: Sequence[str] = ()
) -> None:
    """The images in `fmt` (data/exports.py's writers); npz also gets the arrays `synthetic` (bool),
    `source` (int64, -1 for a real image), `origin` (int8, a position in ORIGINS) and, with a pool,
    `pool_index` (int64, -1 for other images); imagefolder's labels.csv gets the columns origin and
    pool_file."""
    write_export(folder, fmt, expanded.samples(), class_names)
    if fmt == "npz":
        arrays = [
            ("synthetic", expanded.synthetic),
            ("source", expanded.sources),
            ("origin", expanded.origins),
        ]
        if expanded.pool_index is not None:
            arrays.append(("pool_index", expanded.pool_index))
        # An .npz is a zip of .npy files: the arrays join the export's own.
        with zipfile.ZipFile(folder / NPZ_FILE, "a", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, array in arrays:
                with archive.open(f"{name}.npy", "w") as handle:
                    np.lib.format.write_array(handle, array.numpy())
    if fmt == "imagefolder":
        table = folder / LABELS_FILE
        rows = list(csv.reader(table.read_text().splitlines()))
        pool_index = expanded.pool_index.tolist() if expanded.pool_index is not None else None
        with table.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow([*rows[0], "origin", "pool_file"])
            for row, origin in zip(rows[1:], expanded.origins.tolist(), strict=True):
                index = int(Path(row[0]).stem)
                pool_file = pool_files[pool_index[index]] if pool_index and pool_index[index] >= 0 else ""
                writer.writerow([*row, ORIGINS[origin], pool_file])


def image_records(
    expanded: Expanded,
    class_names: Sequence[str],
    fmt: str,
    originals: Sequence[str],
    pool_files: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Per image: its index (and file, for imagefolder), label, class, origin, and the file of the user's
    folder it was converted from (a labelled one), or its pool file, pool index and confidence (a
    pseudo-labelled one), or the index of the real image it was made from (a synthetic one)."""
    folders = class_folders(class_names)
    pool_index = [-1] * len(expanded.labels) if expanded.pool_index is None else expanded.pool_index.tolist()
    confidence = expanded.samples().confidences.tolist()
    records = []
    for index, (label, origin, source) in enumerate(
        zip(expanded.labels.tolist(), expanded.origins.tolist(), expanded.sources.tolist(), strict=True)
    ):
        record: dict[str, Any] = {"index": index}
        if fmt == "imagefolder":
            record["file"] = f"{folders[label]}/{index:06d}.png"
        record.update(label=label, class_name=str(class_names[label]), origin=ORIGINS[origin])
        record["synthetic"] = origin == 2
        if origin == 2:
            record["source"] = source
        elif origin == 1:
            record.update(
                pool_file=pool_files[pool_index[index]],
                pool_index=pool_index[index],
                confidence=round(confidence[index], 6),
            )
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
    augmenter: dict[str, Any] | None,
    settings: dict[str, Any],
    measurement: dict[str, Any] | None,
    pool: dict[str, Any] | None = None,
    pool_files: Sequence[str] = (),
) -> dict[str, Any]:
    """export.json: what read_export needs (format, class_names, num_samples_kept), then the provenance."""
    return {
        "format": fmt,
        "class_names": [str(name) for name in class_names],
        "num_samples_kept": len(expanded.labels),
        "command": "handwriting_gan.expand",
        "source_folder": str(source_folder.resolve()),
        "num_real": expanded.num_real,
        "num_labelled": expanded.num_real - expanded.num_pool,
        "num_pseudo_labelled": expanded.num_pool,
        "num_synthetic": len(expanded.labels) - expanded.num_real,
        "class_counts": expanded.class_counts(class_names),
        "skipped_files": list(skipped),
        "augmenter": augmenter,
        "pool": pool,
        "settings": settings,
        "measurement": measurement,
        "package_version": __version__,
        "images": image_records(expanded, class_names, fmt, originals, pool_files),
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
    return _named_rows(
        captioned_grid(torch.stack(cells), captions, shown * (1 + variations), SCALE), class_names
    )


def review_sheet(expanded: Expanded, class_names: Sequence[str], shown: int) -> Image.Image:
    """One row per class, its name on the left: the `shown` pool images labelled as that class with the
    lowest confidence, least confident first, each captioned with its confidence (blank where fewer), so
    a person can check the labels most likely to be wrong."""
    blank = torch.zeros_like(expanded.images[0])
    pool = expanded.origins == 1
    cells, captions = [], []
    for label in range(len(class_names)):
        members = torch.nonzero(pool & (expanded.labels == label)).flatten()
        order = members[torch.argsort(expanded.confidence[members])][:shown].tolist()
        for slot in range(shown):
            cells.append(expanded.images[order[slot]] if slot < len(order) else blank)
            captions.append(f"{expanded.confidence[order[slot]]:.2f}" if slot < len(order) else "")
    return _named_rows(captioned_grid(torch.stack(cells), captions, shown, SCALE), class_names)


def _named_rows(grid: Image.Image, class_names: Sequence[str]) -> Image.Image:
    """`grid` (one row per class) with each class's name on the left of its row."""
    sheet = Image.new(grid.mode, (grid.width + NAME_WIDTH, grid.height), 0)
    sheet.paste(grid, (NAME_WIDTH, 0))
    draw = ImageDraw.Draw(sheet)
    row_height = grid.height // len(class_names)
    white = 255 if grid.mode == "L" else (255,) * 3
    for label, name in enumerate(class_names):
        draw.text((4, label * row_height + row_height // 2 - 6), str(name)[:11], fill=white)
    return sheet


def augmenter_record(plan: Plan, augmenter, sources: str) -> dict[str, Any]:
    """export.json's `augmenter`: what made the synthetic images, its file and digest, the seed, and what
    each synthetic image's `source` means."""
    from handwriting_gan.augmenter import augmenter_file
    from handwriting_gan.files import file_digest

    generator_file = augmenter_file(plan.augmenter)
    return {
        **augmenter.describe(),
        "file": str(generator_file.resolve()),
        "sha256": file_digest(generator_file),
        "seed": plan.seed,
        "sources": sources,
    }


def folder_manifest(plan: Plan, folder: Folder, expanded: Expanded, **provenance: Any) -> dict[str, Any]:
    """export.json of an expansion of `folder`: writing.manifest with what every expansion records."""
    return manifest(
        fmt=plan.format,
        source_folder=plan.path,
        class_names=folder.class_names,
        expanded=expanded,
        originals=folder.originals,
        skipped=folder.skipped,
        **provenance,
    )


def write_folder(
    plan: Plan,
    folder: Folder,
    expanded: Expanded,
    record: dict[str, Any],
    summary: dict[str, Any] | None,
    sheets: dict[str, Any],
    pool_files: tuple[str, ...] = (),
    copies: dict[str, Path] | None = None,
    render: Callable[[dict[str, Any]], str] = markdown,
) -> None:
    """`out`, whole: the dataset, the `sheets` (file name -> picture), `copies` (file name -> file), the
    report and, last, export.json (`record`), written into a temporary sibling renamed into place (the
    export command's partial_folder)."""
    with (
        Progress(f"Writing {len(expanded.labels)} images ({plan.format})", 1) as progress,
        partial_folder(plan.out, plan.overwrite) as partial,
    ):
        write_dataset(partial, plan.format, expanded, folder.class_names, pool_files)
        for name, sheet in sheets.items():
            sheet.save(partial / name)
        for name, file in (copies or {}).items():
            shutil.copyfile(file, partial / name)
        if summary is not None:
            (partial / REPORT_MD).write_text(render(summary))
            (partial / REPORT_JSON).write_text(json.dumps(summary, indent=2) + "\n")
        (partial / EXPORT_FILE).write_text(json.dumps(record, indent=1) + "\n")  # last: what marks it whole
        progress.advance()
