"""The on-disk formats of an exported synthetic dataset (imagefolder, npz, idx): writing one for the export
command, and reading one back (for `dataset=expanded`).

Every format is a folder holding `export.json` (written last; its `format` and `class_names` say how to
read the rest) and:
    imagefolder   <label>_<class name>/<draw index>.png (torchvision's ImageFolder layout) + labels.csv
    npz           dataset.npz: images (N,H,W) uint8, or (N,C,H,W) when C > 1; labels (N,) int64;
                  class_names (K,) str; confidences (N,) float32
    idx           train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz, MNIST's gzip IDX files
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import gzip
import json
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from handwriting_gan.data.mnist import read_idx
from handwriting_gan.errors import ConfigError, DataError

FORMATS = ("imagefolder", "npz", "idx")
EXPORT_FILE = "export.json"
LABELS_FILE = "labels.csv"
NPZ_FILE = "dataset.npz"
IDX_IMAGES = "train-images-idx3-ubyte.gz"
IDX_LABELS = "train-labels-idx1-ubyte.gz"


def check_format(value) -> str:
    """`value` if it names a format, else a ConfigError listing them."""
    if value not in FORMATS:
        raise ConfigError(
            f"format={value} is not an export format; use one of {', '.join(FORMATS)} "
            f"(imagefolder: one PNG per image; npz: one numpy file; idx: MNIST's gzip IDX files)."
        )
    return value


def check_channels(fmt: str, image_shape: Sequence[int]) -> None:
    """IDX files named like MNIST's hold (N, H, W) images: one channel."""
    if fmt == "idx" and image_shape[0] != 1:
        raise ConfigError(
            f"format=idx writes single-channel images like MNIST's, but this run makes "
            f"{list(image_shape)} images; use format=npz or format=imagefolder."
        )


def class_folders(class_names: Sequence[str]) -> list[str]:
    """One folder name per label: `<label>_<name>`, zero-padded so that sorting the names (as ImageFolder
    does) gives label order, and prefixed so that names differing only in case ('A', 'a') never collide."""
    width = max(2, len(str(len(class_names) - 1)))
    return [f"{label:0{width}d}_{_safe_name(name)}" for label, name in enumerate(class_names)]


def _safe_name(name: str) -> str:
    """`name` with every character that is not portable in a folder name replaced by '_'."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", str(name)) or "unnamed"


@dataclass(frozen=True)
class Samples:
    """Labeled generated images: uint8 (N, C, H, W), int64 labels, the domain classifier's probability of
    each label, and each image's position in the generator's draws (its file name in imagefolder)."""

    images: torch.Tensor
    labels: torch.Tensor
    confidences: torch.Tensor
    indices: torch.Tensor

    def class_counts(self, class_names: Sequence[str]) -> dict[str, int]:
        """Images per class, keyed by class folder name, every class listed in label order."""
        counts = torch.bincount(self.labels, minlength=len(class_names)).tolist()
        return dict(zip(class_folders(class_names), counts, strict=True))


# -- writing -------------------------------------------------------------------------------------
def write_export(folder: Path, fmt: str, samples: Samples, class_names: Sequence[str]) -> None:
    """Write `samples` into the empty `folder` in format `fmt` (everything but export.json)."""
    if fmt == "imagefolder":
        write_imagefolder(folder, samples, class_names)
    elif fmt == "npz":
        write_npz(folder / NPZ_FILE, samples, class_names)
    else:
        write_idx(folder, samples)


def write_imagefolder(folder: Path, samples: Samples, class_names: Sequence[str]) -> None:
    """`<folder>/<class folder>/<draw index>.png` plus labels.csv; every class gets a folder, so
    ImageFolder's class index is the label."""
    folders = class_folders(class_names)
    for name in folders:
        (folder / name).mkdir()
    pixels = samples.images.numpy()
    with open(folder / LABELS_FILE, "w", newline="") as handle:
        rows = csv.writer(handle)
        rows.writerow(["file", "label", "class_name", "confidence"])
        for image, label, confidence, index in zip(
            pixels,
            samples.labels.tolist(),
            samples.confidences.tolist(),
            samples.indices.tolist(),
            strict=True,
        ):
            file = f"{folders[label]}/{index:06d}.png"
            Image.fromarray(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)).save(folder / file)
            rows.writerow([file, label, class_names[label], f"{confidence:.6f}"])


def write_npz(path: Path, samples: Samples, class_names: Sequence[str]) -> None:
    images = samples.images.numpy()
    np.savez_compressed(
        path,
        images=images[:, 0] if images.shape[1] == 1 else images,
        labels=samples.labels.numpy().astype(np.int64),
        class_names=np.array([str(name) for name in class_names]),
        confidences=samples.confidences.numpy().astype(np.float32),
    )


def write_idx(folder: Path, samples: Samples) -> None:
    if samples.labels.numel() and int(samples.labels.max()) > 255:
        raise ConfigError("format=idx stores labels as bytes, at most 255; use format=npz for more classes.")
    _write_idx_gz(folder / IDX_IMAGES, samples.images[:, 0].numpy())
    _write_idx_gz(folder / IDX_LABELS, samples.labels.numpy().astype(np.uint8))


def _write_idx_gz(path: Path, array: np.ndarray) -> None:
    """An unsigned-byte IDX file (magic 0x0000080<ndim>, big-endian sizes, the bytes), gzip-compressed
    with no timestamp so that the same images give the same file."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    with open(path, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as handle:
        handle.write(header)
        handle.write(np.ascontiguousarray(array, dtype=np.uint8).tobytes())


# -- reading -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Export:
    """An export read back: uint8 images (N, C, H, W), int64 labels, the class names they index."""

    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]
    format: str
    #: Per image, whether it is synthetic, where the export says (the expand command's output holds the
    #: user's real images too); None: every image is synthetic (the export command's).
    synthetic: torch.Tensor | None = None
    #: The files read, relative to the export folder (imagefolder), in the images' order.
    files: tuple[str, ...] = ()


def read_export(path: str | Path) -> Export:
    """The export at `path`: a folder the export command wrote (any format), or its dataset.npz alone."""
    path = Path(path).expanduser()
    if path.is_file() and path.suffix == ".npz":
        return _read_npz(path)
    if not path.is_dir():
        raise DataError(
            f"The export {path} does not exist (looked for {path.resolve()}). Pass the out folder of "
            f"`python -m handwriting_gan.export` (or the dataset.npz inside it)."
        )
    record_file = path / EXPORT_FILE
    if not record_file.is_file():
        raise DataError(
            f"{path} is not an export: it has no {EXPORT_FILE} (the export command writes it last, so a "
            f"folder without one is incomplete or someone else's). Pass an out folder of "
            f"`python -m handwriting_gan.export`; for a folder of your own images use dataset=folder."
        )
    try:
        record = json.loads(record_file.read_text())
    except (OSError, ValueError) as error:
        raise DataError(f"{record_file} cannot be read ({error}); export the dataset again.") from None
    if not isinstance(record, dict) or record.get("format") not in FORMATS or "class_names" not in record:
        raise DataError(
            f"{record_file} does not name the export's format and class names (an export made before "
            f"handwriting_gan wrote them, or not an export); export the dataset again."
        )
    fmt = record["format"]
    class_names = tuple(str(name) for name in record["class_names"])
    if fmt == "npz":
        export = _read_npz(path / NPZ_FILE)
        if export.class_names != class_names:
            raise DataError(f"{path / NPZ_FILE} and {record_file} name different classes; export again.")
    elif fmt == "idx":
        missing = [name for name in (IDX_IMAGES, IDX_LABELS) if not (path / name).is_file()]
        if missing:
            raise DataError(f"The idx export {path} lacks {' and '.join(missing)}; export it again.")
        images = torch.from_numpy(read_idx(path / IDX_IMAGES))
        labels = torch.from_numpy(read_idx(path / IDX_LABELS).astype(np.int64))
        export = Export(images.unsqueeze(1), labels, class_names, fmt)
    else:
        export = _read_imagefolder(path, class_names)
    _check(export, path)
    kept = record.get("num_samples_kept")
    if kept is not None and kept != len(export.labels):
        raise DataError(
            f"{record_file} records {kept} images but {path} holds {len(export.labels)}; the export was "
            f"changed after it was written. Export it again."
        )
    return _marked(export, record.get("images"), record_file)


def _marked(export: Export, records, record_file: Path) -> Export:
    """`export` with its `synthetic` mask from the manifest's per-image records, when it has them."""
    if not isinstance(records, list) or not records or "synthetic" not in records[0]:
        return export
    if export.format == "imagefolder":
        flags = {str(r.get("file")): bool(r["synthetic"]) for r in records}
        missing = [file for file in export.files if file not in flags]
        if missing:
            raise DataError(
                f"{record_file} does not list {missing[0]}; the export was changed. Export it again."
            )
        mask = [flags[file] for file in export.files]
    else:
        mask = [bool(r["synthetic"]) for r in sorted(records, key=lambda r: int(r["index"]))]
    return dataclasses.replace(export, synthetic=torch.tensor(mask, dtype=torch.bool))


def _read_npz(path: Path) -> Export:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            images, labels, names = arrays["images"], arrays["labels"], arrays["class_names"]
    except (OSError, ValueError, KeyError) as error:
        raise DataError(
            f"{path} is not an npz export with arrays images, labels and class_names ({error}); "
            f"export it again with format=npz."
        ) from None
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        raise DataError(
            f"{path}: images are {images.dtype} {list(images.shape)}; expected uint8 (N,H,W) or (N,C,H,W)."
        )
    images = torch.from_numpy(images)
    export = Export(
        images.unsqueeze(1) if images.ndim == 3 else images,
        torch.from_numpy(labels.astype(np.int64)),
        tuple(str(name) for name in names),
        "npz",
    )
    _check(export, path)
    return export


def _read_imagefolder(path: Path, class_names: tuple[str, ...]) -> Export:
    images, labels, files = [], [], []
    for label, name in enumerate(class_folders(class_names)):
        folder = path / name
        if not folder.is_dir():
            raise DataError(
                f"The export {path} has no class folder {name} for class {class_names[label]!r}; it was "
                f"changed after it was written. Export it again."
            )
        for file in sorted(folder.glob("*.png")):
            with Image.open(file) as image:
                if image.mode not in ("L", "RGB"):
                    raise DataError(f"{file} is a {image.mode} image; an export holds L or RGB PNGs.")
                pixels = np.asarray(image)
            images.append(pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1))
            labels.append(label)
            files.append(f"{name}/{file.name}")
    if len({image.shape for image in images}) > 1:
        raise DataError(f"The images of the export {path} differ in size; export it again.")
    stacked = torch.from_numpy(np.stack(images)) if images else torch.empty(0, 1, 1, 1, dtype=torch.uint8)
    return Export(
        stacked, torch.tensor(labels, dtype=torch.int64), class_names, "imagefolder", files=tuple(files)
    )


def _check(export: Export, path: Path) -> None:
    if len(export.images) != len(export.labels):
        raise DataError(f"{path}: {len(export.images)} images but {len(export.labels)} labels.")
    if len(export.labels) and not 0 <= int(export.labels.min()) <= int(export.labels.max()) < len(
        export.class_names
    ):
        raise DataError(
            f"{path}: labels run from {int(export.labels.min())} to {int(export.labels.max())} but there "
            f"are {len(export.class_names)} class names."
        )


# -- writing an export folder ---------------------------------------------------------------------
def check_target(out: Path, run_dir: Path, overwrite: bool) -> None:
    """Raise unless `out` can be written: absent, or (with overwrite) a previous export outside the run."""
    if not (out.exists() or out.is_symlink()):
        return
    if not overwrite:
        raise ConfigError(
            f"out={out} already exists; pass overwrite=true to replace it, or choose another out."
        )
    if out.resolve() in (run_dir.resolve(), *run_dir.resolve().parents):
        raise ConfigError(f"out={out} holds the run folder {run_dir}; choose an out outside the run.")
    if not out.is_dir() or (any(out.iterdir()) and not (out / EXPORT_FILE).is_file()):
        raise ConfigError(
            f"out={out} is not an export (it has no {EXPORT_FILE}); overwrite=true replaces only a previous "
            f"export. Choose another out, or remove {out} yourself."
        )


@contextlib.contextmanager
def partial_folder(out: Path, overwrite: bool) -> Iterator[Path]:
    """Yield an empty temporary folder beside `out`; it becomes `out` (replacing an old one only when
    `overwrite`) if the block succeeds, and is removed otherwise."""
    partial = out.parent / f".{out.name}.partial-{os.getpid()}"
    try:
        shutil.rmtree(partial, ignore_errors=True)  # left by a killed process that had this pid
        partial.mkdir(parents=True)
    except OSError as error:
        raise ConfigError(f"out={out} cannot be created: {error}.") from None
    try:
        yield partial
        if not out.exists():
            os.replace(partial, out)
        elif not overwrite:  # appeared while this export ran
            raise ConfigError(f"out={out} appeared during the export; pass overwrite=true to replace it.")
        else:
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
            try:
                os.replace(partial, out)
            except BaseException:
                os.replace(old, out)
                raise
            shutil.rmtree(old)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
