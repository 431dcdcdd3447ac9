"""Omniglot's small background sets (handwritten characters of 8 alphabets, 20 drawers each), read in
place from the authors' two zip files, split by drawer, and converted once into MNIST's format
(handwriting_gan.data.preprocess), cached under `paths.cache_dir`.
"""

from __future__ import annotations

import io
import logging
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch

from handwriting_gan.data.base import ImageDataModule
from handwriting_gan.data.conversion import Conversion, convert_characters, files_digest, grey_square
from handwriting_gan.data.preprocess import Preprocessing
from handwriting_gan.errors import ConfigError, DataError
from handwriting_gan.shell import check_count

log = logging.getLogger(__name__)

#: The authors' files (github.com/brendenlake/omniglot, python/) and the alphabets each holds; Greek and
#: Latin are in both, byte for byte.
ARCHIVES: dict[str, tuple[str, ...]] = {
    "images_background_small1.zip": ("Balinese", "Early_Aramaic", "Greek", "Korean", "Latin"),
    "images_background_small2.zip": ("Greek", "Japanese_(katakana)", "Latin", "Sanskrit", "Tagalog"),
}
#: SHA-256 of the official files, for a person checking a download (a changed file is still read).
SHA256 = {
    "images_background_small1.zip": "f38eb80f801274ac2b4dff5b24289016bfaba4a7d5bb50deebf27104ad6cb8a4",
    "images_background_small2.zip": "3ccaa407515a8778e5d0861875af38b17e418f301ad5bb3b5a6b65d901a41c7f",
}
URL = "https://github.com/brendenlake/omniglot"
#: Named alphabet splits for `dataset.alphabets`: the classes the shipped augmenter trains on, and two
#: disjoint held-out sets of target classes to expand from few images each. Together: all 8 alphabets.
SPLITS: dict[str, tuple[str, ...]] = {
    "source": ("Japanese_(katakana)", "Korean", "Latin", "Sanskrit"),
    "held_out_a": ("Balinese", "Early_Aramaic"),
    "held_out_b": ("Greek", "Tagalog"),
}
#: Every character is drawn once by each of drawers 01..20 (the number after the file name's underscore).
DRAWERS = 20
#: `characters=train` or `validation`: of every kept alphabet, the characters whose number is a multiple
#: of `validation_every` (character05, character10, ...) are the validation characters, the others the
#: training characters; the augmenter's training length is chosen on characters it never trained on.
CHARACTER_SPLITS = ("all", "train", "validation")
CHARACTER_NUMBER = re.compile(r"character(\d+)$")
# <top folder>/<Alphabet>/characterNN/<file>.png, whatever the top folder is called.
MEMBER = re.compile(r"(?:^|/)([^/]+/character\d{2}/([^/]+\.png))$", re.IGNORECASE)
DRAWING = re.compile(r"\d+_(\d{2})\.png", re.IGNORECASE)
# How many problems an error names before it only counts the rest.
NAMED = 5


@dataclass(frozen=True)
class Drawings:
    """The PNG drawings as read, each once, in (character, drawer) order: its name `<Alphabet>/characterNN/
    <id>_<drawer>.png`, the archive it was read from, its drawer number and its bytes.

    `digest` hashes every name and its bytes, so the same drawings give the same cache whichever archives
    they came from, and any changed, added or removed drawing gives another.
    """

    names: tuple[str, ...]
    archives: tuple[Path, ...]
    drawers: tuple[int, ...]
    contents: tuple[bytes, ...]

    @cached_property
    def class_names(self) -> tuple[str, ...]:
        """`<Alphabet>/characterNN` of every character, sorted by alphabet then character."""
        return tuple(sorted({character_of(name) for name in self.names}))

    @cached_property
    def labels(self) -> tuple[int, ...]:
        index = {name: label for label, name in enumerate(self.class_names)}
        return tuple(index[character_of(name)] for name in self.names)

    @cached_property
    def digest(self) -> str:
        return files_digest(self.names, self.contents)

    def display(self, index: int) -> str:
        """Where a drawing is, for a person: the archive and its member."""
        return f"{self.archives[index]}: {self.names[index]}"


def character_of(name: str) -> str:
    """`Latin/character01` of `Latin/character01/0001_01.png`."""
    return name.rsplit("/", 1)[0]


def alphabet_of(character: str) -> str:
    return character.split("/", 1)[0]


class OmniglotDataModule(ImageDataModule):
    """Omniglot's small background sets 1 and 2 (8 alphabets, 242 characters, 20 drawings of each, 4,840
    in all) as uint8 tensors in MNIST's format; a class is a character, named `<Alphabet>/characterNN`.

    Read, never written or unpacked, from the authors' zip files in `<root>/omniglot/`: either or both of
    `images_background_small1.zip` and `images_background_small2.zip` (Greek and Latin, in both, are read
    once). Each drawing (105x105, black strokes on white) is converted once and cached in
    `<cache_dir>/omniglot/` under a hash of every drawing's name and bytes and the preprocessing settings,
    with a report beside it; the cache holds every alphabet found, so choosing alphabets converts nothing
    again. A drawing that cannot be a character is left out unless `strict` (conversion.Conversion.accept).

    `alphabets` keeps some alphabets: a list of names, the name of a SPLITS entry, or null for all.
    Unlike `classes`, which keeps the full label table so a label means the same class in every subset,
    the kept alphabets form their own dataset: `class_names` lists only their characters and labels run
    0..K-1 over them. An alphabet split is a different set of classes (a held-out alphabet is the target
    of few-shot expansion, with a classifier of its own characters), not a subset of one label space;
    `all_class_names` is the table of every alphabet found.

    The split is by drawer: drawers 21 - `test_drawers` to 20 of every character are the test split, the
    others the training split, so `per_class` picks from drawers the test never shows.

    `characters` splits the kept alphabets' characters themselves: `train` keeps those whose number is
    not a multiple of `validation_every`, `validation` those that are (every fifth character of each
    alphabet by default), `all` every one. The two parts are disjoint sets of classes, each with its own
    label space, as alphabets are: an augmenter trains on one and is measured on the other.
    """

    def __init__(
        self,
        root: str,
        cache_dir: str,
        alphabets: Sequence[str] | str | None = None,
        test_drawers: int = 5,
        fit_size: int = 20,
        image_size: int = 28,
        strict: bool = False,
        characters: str = "all",
        validation_every: int = 5,
        **kwargs,
    ) -> None:
        super().__init__(**grey_square(image_size, kwargs, "Omniglot becomes"))
        if characters not in CHARACTER_SPLITS:
            raise ConfigError(
                f"dataset.characters={characters} must be one of {', '.join(CHARACTER_SPLITS)}: all keeps "
                f"every character of the kept alphabets, validation every {validation_every}th of each "
                f"alphabet, train the others."
            )
        check_count(
            "dataset.validation_every",
            validation_every,
            2,
            ": every validation_every-th character of each alphabet is a validation character (5: a fifth)",
        )
        if (
            isinstance(test_drawers, bool)
            or not isinstance(test_drawers, int)
            or not 0 < test_drawers < DRAWERS
        ):
            raise ConfigError(
                f"dataset.test_drawers={test_drawers} must be a number of drawers from 1 to {DRAWERS - 1}: "
                f"the highest-numbered ones of every character's {DRAWERS} form the test split (5 leaves "
                f"drawers 01-15 for training)."
            )
        if not isinstance(strict, bool):
            raise ConfigError(
                f"dataset.strict={strict} must be true (refuse the dataset if any drawing cannot be a "
                f"character) or false (leave such drawings out)."
            )
        # The drawings are black strokes on white paper, 1 bit: nothing to detect, no threshold to set.
        self.preprocessing = Preprocessing((image_size, image_size), fit_size, "dark")
        self.alphabets = _alphabet_list(alphabets)
        self.root = Path(root).expanduser()
        self.cache_dir = Path(cache_dir).expanduser()
        self.image_size = image_size
        self.test_drawers = test_drawers
        self.strict = strict
        self.characters = characters
        self.validation_every = validation_every
        self._drawings: Drawings | None = None
        self._all: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._cache_path: Path | None = None

    @property
    def folder(self) -> Path:
        return self.root / "omniglot"

    # -- the class tables ------------------------------------------------------------------------
    @property
    def all_class_names(self) -> tuple[str, ...]:
        """Every character of every alphabet found, sorted: the cache's label table."""
        return self.drawings().class_names

    @property
    def found_alphabets(self) -> tuple[str, ...]:
        return tuple(sorted({alphabet_of(name) for name in self.all_class_names}))

    @cached_property
    def selected_alphabets(self) -> tuple[str, ...]:
        """The alphabets `dataset.alphabets` keeps, sorted (every one found when it is null)."""
        found = self.found_alphabets
        if self.alphabets is None:
            return found
        expanded = dict.fromkeys(a for name in self.alphabets for a in SPLITS.get(name, (name,)))
        absent = [name for name in expanded if name not in found]
        known = {alphabet: archive for archive, names in ARCHIVES.items() for alphabet in names}
        missing_archives = sorted({known[name] for name in absent if name in known})
        if missing_archives:
            raise DataError(
                f"dataset.alphabets={list(self.alphabets)} needs {', '.join(a for a in absent if a in known)}"
                f", which {' and '.join(missing_archives)} holds, but {self.folder} has only "
                f"{', '.join(self._present_archives())}. Place the missing file there from {URL} "
                f"(python/{missing_archives[0]}), or choose from the alphabets found: {', '.join(found)}."
            )
        if absent:
            raise ConfigError(
                f"dataset.alphabets={list(self.alphabets)} names {absent}, which Omniglot does not have. "
                f"Its alphabets are: {', '.join(found)}; its named splits: "
                + "; ".join(f"{split} ({', '.join(names)})" for split, names in SPLITS.items())
                + ". Name alphabets from those, e.g. dataset.alphabets=source or dataset.alphabets=[Latin]."
            )
        return tuple(sorted(expanded))

    @property
    def class_names(self) -> tuple[str, ...]:
        """The characters of the selected alphabets (and of `characters`' part of them), sorted; a label is
        a position in this table."""
        kept = set(self.selected_alphabets)
        names = tuple(name for name in self.all_class_names if alphabet_of(name) in kept)
        if self.characters == "all":
            return names
        validation = self.characters == "validation"
        chosen = tuple(name for name in names if self._is_validation(name) == validation)
        if not chosen:
            raise ConfigError(
                f"dataset.characters={self.characters} keeps none of the {len(names)} characters of "
                f"{', '.join(self.selected_alphabets)} (every {self.validation_every}th is a validation "
                f"character); lower dataset.validation_every or choose characters=all."
            )
        return chosen

    def _is_validation(self, character: str) -> bool:
        number = CHARACTER_NUMBER.search(character)
        return number is not None and int(number.group(1)) % self.validation_every == 0

    # -- the splits ----------------------------------------------------------------------------
    def _load(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels, _ = self._selected(train)
        return images, labels

    def drawers(self, train: bool) -> torch.Tensor:
        """The drawer number (1-20) of every image of the split's selected alphabets, in the order of
        `split(train)` before `classes` and `per_class` keep part of it."""
        return self._selected(train)[2]

    def _selected(self, train: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        images, labels, drawers = self.converted()
        selected = set(self.class_names)
        relabel = torch.full((len(self.all_class_names),), -1, dtype=torch.int64)
        kept = [label for label, name in enumerate(self.all_class_names) if name in selected]
        relabel[kept] = torch.arange(len(kept))
        labels = relabel[labels]
        test = drawers > DRAWERS - self.test_drawers
        keep = (labels >= 0) & (~test if train else test)
        return images[keep], labels[keep], drawers[keep]

    # -- converting, cached --------------------------------------------------------------------
    def cache_path(self) -> Path:
        """Where the converted drawings are kept; other drawings or another setting give another name."""
        if self._cache_path is None:
            digest = self.drawings().digest
            self._cache_path = (
                self.cache_dir / "omniglot" / f"omniglot-{digest[:16]}-{self.preprocessing.key}.pt"
            )
        return self._cache_path

    def converted(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every usable drawing of every alphabet found as (uint8 images (N, H, W), int64 labels in
        `all_class_names`, int64 drawer numbers)."""
        if self._all is None:
            drawings, path = self.drawings(), self.cache_path()
            classes = [f"Character {name!r}" for name in drawings.class_names]
            conversion = Conversion.cached(
                path,
                lambda: self._convert(path, drawings),
                classes,
                str(self.folder),
                self.strict,
                self.preprocessing,
                drawings.class_names,
            )
            drawers = torch.tensor(drawings.drawers, dtype=torch.int64)[conversion.kept]
            self._all = (conversion.images, conversion.labels, drawers)
        return self._all

    def _convert(self, path: Path, drawings: Drawings) -> Conversion:
        log.info("Converting the %d drawings of %s once into %s", len(drawings.names), self.folder, path)
        files = [
            (drawings.display(index), label, io.BytesIO(content))
            for index, (label, content) in enumerate(zip(drawings.labels, drawings.contents, strict=True))
        ]
        return convert_characters(files, self.preprocessing, "Omniglot")

    # -- reading the archives ------------------------------------------------------------------
    def drawings(self) -> Drawings:
        """Every drawing of the archives present, read once; DataError when none is there or they do not
        hold Omniglot's layout."""
        if self._drawings is None:
            self._drawings = self._read()
        return self._drawings

    def _present_archives(self) -> list[str]:
        return [name for name in ARCHIVES if (self.folder / name).is_file()]

    def _read(self) -> Drawings:
        present = self._present_archives()
        if not present:
            raise DataError(self._missing_message())
        found: dict[str, tuple[Path, bytes]] = {}
        for name in present:
            archive = self.folder / name
            members = _members(archive)
            if not members:
                raise DataError(
                    f"{archive} holds no <Alphabet>/characterNN/<id>_<drawer>.png, so it is not Omniglot's "
                    f"{name}. Place the official file from {URL} (python/{name}) there."
                )
            for member, content in members.items():
                if member in found and found[member][1] != content:
                    raise DataError(
                        f"{member} differs between {found[member][0]} and {archive}; the official archives "
                        f"hold the same bytes. Replace the changed archive with the official one from {URL}."
                    )
                found.setdefault(member, (archive, content))
        drawers = {member: int(DRAWING.fullmatch(member.rsplit("/", 1)[1]).group(1)) for member in found}
        _check_drawers(drawers, found)
        names = sorted(found, key=lambda member: (character_of(member), drawers[member]))
        return Drawings(
            tuple(names),
            tuple(found[n][0] for n in names),
            tuple(drawers[n] for n in names),
            tuple(found[n][1] for n in names),
        )

    def _missing_message(self) -> str:
        folder = self.folder.resolve()
        wanted = " and ".join(f"python/{name} (SHA-256 {digest[:12]}...)" for name, digest in SHA256.items())
        return (
            f"Omniglot is missing from {folder}: neither {' nor '.join(ARCHIVES)} is there. Download "
            f"{wanted} from the authors' repository {URL} and place them, still zipped, in {folder}, or "
            f"point paths.data_dir (HWGAN_DATA_DIR) at a folder that holds omniglot/. They are only read; "
            f"the converted images go to {self.cache_dir.resolve() / 'omniglot'}."
        )


def _alphabet_list(alphabets: Sequence[str] | str | None) -> tuple[str, ...] | None:
    """`dataset.alphabets` as names (alphabets or SPLITS keys); Hydra gives a bare string for `=source`."""
    if alphabets is None:
        return None
    names = (alphabets,) if isinstance(alphabets, str) else tuple(str(name) for name in alphabets)
    if not names:
        raise ConfigError(
            "dataset.alphabets=[] keeps no alphabet: name some (e.g. [Latin,Greek]), a split "
            f"({', '.join(SPLITS)}), or null for all."
        )
    return names


def _members(archive: Path) -> dict[str, bytes]:
    """`<Alphabet>/characterNN/<file>.png` -> bytes of every drawing in the zip `archive`."""
    members = {}
    try:
        with zipfile.ZipFile(archive) as zipped:
            for info in zipped.infolist():
                parts = info.filename.split("/")
                # macOS adds __MACOSX/ and ._ files to archives it makes; they are not drawings.
                if info.is_dir() or any(p.startswith(".") or p == "__MACOSX" for p in parts):
                    continue
                match = MEMBER.search(info.filename)
                if match is None:
                    continue
                if DRAWING.fullmatch(match.group(2)) is None:
                    raise DataError(
                        f"{archive}: {info.filename} is not named <id>_<drawer>.png (e.g. 0108_01.png), so "
                        f"its drawer is unknown. Place the official file from {URL} there."
                    )
                members[match.group(1)] = zipped.read(info)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataError(
            f"{archive} cannot be read as a zip archive ({exc}): it is truncated, corrupt or another file. "
            f"Download it again from {URL} (python/{archive.name})."
        ) from None
    return members


def _check_drawers(drawers: dict[str, int], found: dict[str, tuple[Path, bytes]]) -> None:
    """DataError unless every character has one drawing by each of drawers 01..DRAWERS."""
    by_character: dict[str, list[int]] = {}
    for member, drawer in drawers.items():
        by_character.setdefault(character_of(member), []).append(drawer)
    problems = []
    for character, numbers in sorted(by_character.items()):
        wrong = sorted({n for n in numbers if not 1 <= n <= DRAWERS or numbers.count(n) > 1})
        missing = sorted(set(range(1, DRAWERS + 1)) - set(numbers))
        if wrong or missing:
            said = [f"missing drawer {', '.join(f'{n:02d}' for n in missing)}"] if missing else []
            said += [f"drawer {', '.join(f'{n:02d}' for n in wrong)} twice or out of range"] if wrong else []
            problems.append(f"{character} ({'; '.join(said)})")
    if problems:
        more = f", and {len(problems) - NAMED} more" if len(problems) > NAMED else ""
        archives = sorted({str(archive) for archive, _ in found.values()})
        raise DataError(
            f"{' and '.join(archives)} do not hold one drawing by each of drawers 01-{DRAWERS} for every "
            f"character: {', '.join(problems[:NAMED])}{more}. Replace them with the official files from "
            f"{URL}."
        )
