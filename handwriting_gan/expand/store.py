"""The work folder `<out>.partial/`: every finished step of an expansion, each file written atomically,
kept until `out` is complete so that the same command run again continues where it stopped.

    arguments.json        what the steps depend on (Plan.identity and the folder's images); a run with
                          other arguments refuses to continue it
    measure/seed_<s>.json seed s of the measurement: its tuned classical setting and each arm's accuracy,
                          stored as each is finished
    synthetic.pt          the augmenter's images for the expanded dataset, their labels and sources
    ssgan/                with a pool: the semi-supervised GAN's run folder (continued from its checkpoint)
    gan_labels.pt         with a pool and the GAN: every pool image's label and confidence by its classifier
    pool_labels.pt        with a pool and self-training: the same, by self-training's last classifier
    measure/ssgan_seed_<s>/  with a pool and measure=true: seed s's GAN, trained without its held-out part
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from handwriting_gan.errors import ConfigError, DataError
from handwriting_gan.files import atomic_path

FORMAT = "handwriting_gan.expand"
VERSION = 1
ARGUMENTS_FILE = "arguments.json"
SYNTHETIC_FILE = "synthetic.pt"
MEASURE_FOLDER = "measure"


class WorkFolder:
    """`path`, holding the steps of the expansion that `arguments` describe."""

    def __init__(self, path: Path, arguments: dict[str, Any]) -> None:
        self.path = path
        self.arguments = json.loads(json.dumps(arguments))  # as arguments.json holds them: lists, not tuples

    def check(self) -> bool:
        """Whether `path` holds earlier steps of these arguments (False: it does not exist); ConfigError
        when it holds something else."""
        if not (self.path.exists() or self.path.is_symlink()):
            return False
        record_file = self.path / ARGUMENTS_FILE
        try:
            record = json.loads(record_file.read_text())
        except (OSError, ValueError):
            record = None
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            raise ConfigError(
                f"{self.path} exists and is not the work folder of an expansion (no readable "
                f"{ARGUMENTS_FILE}); remove it, or choose another out."
            )
        stored = record.get("arguments", {})
        changed = sorted(k for k in {*stored, *self.arguments} if stored.get(k) != self.arguments.get(k))
        if changed:
            details = "; ".join(
                f"{k}: {stored.get(k)!r} then, {self.arguments.get(k)!r} now" for k in changed
            )
            raise ConfigError(
                f"{self.path} holds an interrupted expansion with other arguments ({details}). Run the same "
                f"command as then to continue it, or remove {self.path} to start over with these."
            )
        return True

    def open(self) -> bool:
        """Create the folder, or check that it holds these arguments' steps; whether it already did."""
        if self.check():
            return True
        self.path.mkdir(parents=True)
        with atomic_path(self.path / ARGUMENTS_FILE) as tmp:
            tmp.write_text(
                json.dumps({"format": FORMAT, "version": VERSION, "arguments": self.arguments}, indent=2)
                + "\n"
            )
        return False

    # -- the measurement -----------------------------------------------------------------------------
    def seed_file(self, seed: int) -> Path:
        return self.path / MEASURE_FOLDER / f"seed_{seed}.json"

    def seed_record(self, seed: int) -> dict[str, Any]:
        """The stored steps of seed `seed` ({"seed", "arms": {}} when none)."""
        path = self.seed_file(seed)
        if not path.is_file():
            return {"seed": seed, "arms": {}}
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise DataError(
                f"{path} cannot be read ({error}); delete it to measure seed {seed} again."
            ) from None

    def save_seed(self, record: dict[str, Any]) -> None:
        with atomic_path(self.seed_file(record["seed"])) as tmp:
            tmp.write_text(json.dumps(record, indent=2) + "\n")

    # -- the synthetic images ------------------------------------------------------------------------
    def synthetic(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """(images, labels, sources) stored by `save_synthetic`, or None."""
        path = self.path / SYNTHETIC_FILE
        if not path.is_file():
            return None
        try:
            data = torch.load(path, weights_only=True)
            return data["images"], data["labels"], data["sources"]
        except Exception as error:
            raise DataError(f"{path} cannot be read ({error}); delete it to generate again.") from None

    def save_synthetic(self, images: torch.Tensor, labels: torch.Tensor, sources: torch.Tensor) -> None:
        with atomic_path(self.path / SYNTHETIC_FILE) as tmp:
            torch.save({"images": images, "labels": labels, "sources": sources}, tmp)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
