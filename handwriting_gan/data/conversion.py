"""A set of character image files converted into MNIST's format (handwriting_gan.data.preprocess), the
one rule for files that cannot be characters (left out and reported, or refused), and the cache of a
converted set with its report, shared by every dataset read from image files (Chars74K, folder)."""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch

from handwriting_gan.data.preprocess import NotACharacter, Preprocessing, Source
from handwriting_gan.errors import ConfigError, DataError
from handwriting_gan.files import atomic_path

log = logging.getLogger(__name__)

# How many skipped files a console line or an error names before it only counts the rest.
NAMED = 3
# A long conversion says how far it is at most this often.
PROGRESS_SECONDS = 15.0
# Sets of at least this many image files are converted by several processes: below it, starting them
# (a second or two) would cost more than the conversion gains.
PARALLEL_FROM = 2000
# Files a worker converts per task: few enough for regular progress lines, many enough to keep the
# workers' messages a small share of their time.
CHUNK = 256


@dataclass
class Conversion:
    """Files converted by `convert_characters`: the usable ones as images, the others with the reason.

    `images` (uint8, N x H x W), `labels` and `kept` (each image's position in the input) cover the usable
    files in input order; `skipped` lists (file, label, reason) of the others.
    """

    images: torch.Tensor
    labels: torch.Tensor
    kept: torch.Tensor
    skipped: list[tuple[str, int, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.kept) + len(self.skipped)

    def accept(self, classes: Sequence[str], source: str, strict: bool, report: Path | None = None) -> None:
        """The one rule for files that cannot be characters: they are left out, and one console line counts
        them and names the first few. DataError instead when `strict` and any was left out, or when a class
        that had files keeps none (`classes[label]` names the class in the message, e.g. "Class folder
        ~/letters/a"). `report` is the file that lists them all."""
        full_list = refused_list = f" The full list: {report}." if report is not None else ""
        if report is not None and not report.is_file():  # a refusal writes nothing, so no report yet
            refused_list = f" A load with dataset.strict=false writes the full list to {report}."
        if self.skipped and strict:
            raise DataError(
                f"{len(self.skipped)} of {self.total} images of {source} cannot be characters and "
                f"dataset.strict=true refuses them: {_named(self.skipped)}.{refused_list} Replace or remove "
                f"them, or set dataset.strict=false to train without them."
            )
        usable = torch.bincount(self.labels, minlength=len(classes))
        for label in sorted({label for _, label, _ in self.skipped}):
            if usable[label] == 0:
                lost = [entry for entry in self.skipped if entry[1] == label]
                raise DataError(
                    f"{classes[label]} has no usable image: none of its {len(lost)} images can be a "
                    f"character ({_named(lost)}).{refused_list} Replace them with readable images of the "
                    f"character, or remove the class."
                )
        if self.skipped:
            log.warning(
                "Skipped %d of %d images of %s that cannot be characters: %s.%s Set dataset.strict=true to "
                "refuse them instead.",
                len(self.skipped),
                self.total,
                source,
                _named(self.skipped),
                full_list,
            )

    @classmethod
    def cached(
        cls,
        path: Path,
        convert: Callable[[], Conversion],
        classes: Sequence[str],
        source: str,
        strict: bool,
        settings: Preprocessing,
        class_names: Sequence[str],
    ) -> Conversion:
        """The conversion cached at `path`, else `convert()`'s, which is cached only once `accept` passed
        it (a refused dataset leaves nothing behind). `classes`, `source` and `strict` are accept's."""
        cached = path.is_file()
        conversion = cls.load(path) if cached else convert()
        conversion.accept(classes, source, strict, report_path(path))
        if not cached:
            conversion.save(path, source, settings, class_names)
        return conversion

    def save(self, path: Path, source: str, settings: Preprocessing, class_names: Sequence[str]) -> None:
        """Write the cache file `path` and, beside it, its report (`report_path`): what was read (`source`,
        a path), how many images of each class are usable, and every file left out with the reason. Both
        atomically."""
        usable = torch.bincount(self.labels, minlength=len(class_names)).tolist()
        left_out = [0] * len(class_names)
        for _, label, _ in self.skipped:
            left_out[label] += 1
        report = {
            "source": str(Path(source).resolve()),
            "preprocessing": settings.key,
            "images": self.total,
            "usable": len(self.kept),
            "skipped": len(self.skipped),
            "per_class": {
                str(name): {"usable": usable[label], "skipped": left_out[label]}
                for label, name in enumerate(class_names)
            },
            "skipped_files": [
                {"file": file, "class": str(class_names[label]), "reason": reason}
                for file, label, reason in self.skipped
            ],
        }
        data = {
            "images": self.images,
            "labels": self.labels,
            "kept": self.kept,
            "skipped": [list(entry) for entry in self.skipped],
        }
        with atomic_path(path) as tmp:
            torch.save(data, tmp)
        with atomic_path(report_path(path)) as tmp:
            tmp.write_text(json.dumps(report, indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> Conversion:
        """A conversion saved by `save`; DataError saying to delete the file when it cannot be read."""
        try:
            data = torch.load(path, weights_only=True)
            skipped = [(str(file), int(label), str(reason)) for file, label, reason in data["skipped"]]
            return cls(data["images"], data["labels"], data["kept"], skipped)
        except Exception as exc:
            raise DataError(f"The cache {path} cannot be read ({exc}); delete it to rebuild it.") from None


def files_digest(names: Sequence[str], contents: Sequence[bytes]) -> str:
    """A hash of every file's name and bytes, in order: the same files give the same cache key whatever
    held them (an archive, an unpacked tree), and any changed, added or removed file gives another."""
    sha = hashlib.sha256()
    for name, content in zip(names, contents, strict=True):
        sha.update(f"{name}\0{len(content)}\0".encode())
        sha.update(content)
    return sha.hexdigest()


def grey_square(image_size, kwargs: dict, what: str) -> dict:
    """A converting datamodule's keyword arguments with image_shape (1, image_size, image_size), checked:
    `what` (e.g. "folder images become") one grey channel of image_size x image_size, so an image_shape
    given beside image_size must be that."""
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size <= 0:
        raise ConfigError(
            f"dataset.image_size={image_size} must be a positive number of pixels, e.g. 28 (MNIST), 32 or 64."
        )
    square = (1, image_size, image_size)
    shape = kwargs.setdefault("image_shape", square)
    try:
        matches = tuple(int(side) for side in shape) == square
    except (TypeError, ValueError):
        matches = True  # not a shape at all: the datamodule's own check says so
    if not matches:
        raise ConfigError(
            f"dataset.image_shape={list(shape)} does not match dataset.image_size={image_size}: {what} one "
            f"grey channel of image_size x image_size. Set dataset.image_size alone (image_shape follows "
            f"it), or image_shape=[1,{image_size},{image_size}]."
        )
    return kwargs


def report_path(cache: Path) -> Path:
    """The report beside a cache file: `<name>.report.json` for `<name>.pt`."""
    return cache.with_name(f"{cache.stem}.report.json")


def convert_characters(
    files: Sequence[tuple[str, int, Source]], settings: Preprocessing, what: str
) -> Conversion:
    """Every file, given as (name, label, source), in MNIST's format (`settings`). One that cannot be a
    character (NotACharacter: unreadable, too small, no ink) is left out with its reason instead of
    stopping the rest; `Conversion.accept` then applies the rule. A long conversion logs its progress,
    naming the set `what`."""
    images, labels, kept, skipped = [], [], [], []
    progress = _Progress(len(files), what)
    results = _each_converted(files, settings)
    for index, ((name, label, _), result) in enumerate(zip(files, results, strict=True)):
        if isinstance(result, str):
            skipped.append((name, int(label), result))
        else:
            images.append(result)
            labels.append(int(label))
            kept.append(index)
        progress.step(index + 1)
    stacked = np.stack(images) if images else np.zeros((0, *settings.size), dtype=np.uint8)
    return Conversion(
        torch.from_numpy(stacked),
        torch.tensor(labels, dtype=torch.int64),
        torch.tensor(kept, dtype=torch.int64),
        skipped,
    )


def _each_converted(
    files: Sequence[tuple[str, int, Source]], settings: Preprocessing
) -> Iterator[np.ndarray | str]:
    """Each file's image, or the reason it cannot be a character, in order. A set of at least
    PARALLEL_FROM files on disk is converted by as many worker processes as torch has threads (the cores
    the command was given): one image takes a few milliseconds of Python and numpy, and MNIST's pool of
    59,900 PNGs took 195 s in one process, 97 s in two, on a 2-core CPU."""
    workers = min(torch.get_num_threads(), os.cpu_count() or 1)
    on_disk = all(isinstance(source, str | os.PathLike) for _, _, source in files)
    # Forked workers, as torch's DataLoader starts them on Linux. Spawned ones (the default elsewhere)
    # would run the caller's script again, which fails in a script without a __main__ guard.
    if workers < 2 or len(files) < PARALLEL_FROM or not on_disk or not sys.platform.startswith("linux"):
        return (_convert_one(settings, name, source) for name, _, source in files)
    return _in_workers(files, settings, workers)


def _in_workers(
    files: Sequence[tuple[str, int, Source]], settings: Preprocessing, workers: int
) -> Iterator[np.ndarray | str]:
    # The workers only read files with Pillow and numpy: none of the locks or thread pools of torch that
    # a fork copies mid-work is used in them.
    names = [name for name, _, _ in files]
    sources = [os.fspath(source) for _, _, source in files]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        yield from pool.map(partial(_convert_one, settings), names, sources, chunksize=CHUNK)


def _convert_one(settings: Preprocessing, name: str, source: Source) -> np.ndarray | str:
    try:
        return settings.convert(source, name)
    except NotACharacter as error:
        return error.reason


class _Progress:
    """Logs how far a conversion is, every PROGRESS_SECONDS, and its end when it took that long."""

    def __init__(self, total: int, what: str) -> None:
        self.total, self.what = total, what
        self.started = self.last = time.monotonic()

    def step(self, done: int) -> None:
        now = time.monotonic()
        elapsed = now - self.started
        if done == self.total:
            if elapsed >= PROGRESS_SECONDS:
                log.info("%s: converted %d images in %s.", self.what, self.total, _duration(elapsed))
        elif now - self.last >= PROGRESS_SECONDS:
            self.last = now
            left = elapsed / done * (self.total - done)
            log.info(
                "%s: converted %d of %d images (%d%%), about %s left.",
                self.what,
                done,
                self.total,
                100 * done // self.total,
                _duration(left),
            )


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def _named(skipped: Sequence[tuple[str, int, str]]) -> str:
    """The first NAMED skipped files with their reasons, then how many more."""
    named = "; ".join(f"{file} ({reason})" for file, _, reason in skipped[:NAMED])
    more = len(skipped) - NAMED
    return named + (f"; and {more} more" if more > 0 else "")
