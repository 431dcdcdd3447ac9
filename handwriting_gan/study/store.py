"""The study folder's layout and its results store, `<out>/results.json`: every finished step, kept
so that running the study again resumes where it stopped."""

from __future__ import annotations

import json
from pathlib import Path

from handwriting_gan.errors import ConfigError, DataError
from handwriting_gan.files import atomic_path

#: <out>/RESULTS_FILE holds the results; <out>/RUNS_FOLDER/<run_key> is each GAN run's folder.
RESULTS_FILE = "results.json"
RUNS_FOLDER = "runs"
#: results.json's "format" and "version": what marks the file as a study's.
RESULTS_FORMAT = "handwriting_gan.study"
RESULTS_VERSION = 1


def run_key(per_class: int, seed: int) -> str:
    """The GAN run (per_class, seed)'s key in results.json and its folder's name under RUNS_FOLDER."""
    return f"pc{per_class}_seed{seed}"


class ResultsFile:
    """A results file of a command that resumes: {"format", "version", "settings", <ENTRIES>: {...}},
    refused when it was made with other settings (resuming would mix them), rewritten atomically by
    `save`. Subclasses name their format and what their entries are."""

    FORMAT, VERSION, ENTRIES, WHAT = RESULTS_FORMAT, RESULTS_VERSION, "runs", "study"

    def __init__(self, path: Path, settings: dict) -> None:
        self.path = path
        self.data = {"format": self.FORMAT, "version": self.VERSION, "settings": settings, self.ENTRIES: {}}
        if path.exists():
            self.data = self._read(settings)

    def _read(self, settings: dict) -> dict:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as error:
            raise DataError(
                f"{self.path} cannot be read ({error}); move it away to start the {self.WHAT} over, or "
                f"choose another out=."
            ) from None
        if not isinstance(data, dict) or data.get("format") != self.FORMAT:
            raise ConfigError(f"{self.path} is not a {self.WHAT}'s results file; choose another out=.")
        stored = data.get("settings", {})
        changed = sorted(key for key in {*stored, *settings} if stored.get(key) != settings.get(key))
        if changed:
            details = "; ".join(f"{k}: {stored.get(k)!r} there, {settings.get(k)!r} now" for k in changed)
            raise ConfigError(
                f"{self.path} holds a {self.WHAT} with other settings ({details}). Resuming would mix "
                f"them: run with the same settings, or choose another out= for the new ones."
            )
        return data

    def save(self) -> None:
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps(self.data, indent=2) + "\n")


class Results(ResultsFile):
    """`<out>/results.json`: every finished step of the study, rewritten atomically after each one.

    {"format", "version", "settings": Study.identity(), "runs": {"pc10_seed0": {"per_class", "seed",
    "quality": {...}, "arms": {"real": {"test_acc", ...}, ...}}}}
    """

    def run(self, per_class: int, seed: int) -> dict:
        """The stored steps of the GAN run (per_class, seed); an empty record when none is stored."""
        return self.data["runs"].setdefault(
            run_key(per_class, seed), {"per_class": per_class, "seed": seed, "quality": None, "arms": {}}
        )
