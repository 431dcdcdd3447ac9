"""The one conversion of a character image file into MNIST's format (paper black, ink white, cropped,
fitted and centred by centre of mass), shared by every dataset read from image files (Chars74K,
folder); handwriting_gan.data.conversion converts a whole set of them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import IO

import numpy as np
from PIL import Image, ImageOps

from handwriting_gan.errors import ConfigError, DataError

log = logging.getLogger(__name__)

INK = ("auto", "dark", "light")
#: Part of every cache file's name: bump it when the conversion below changes its output.
VERSION = 3
# Ink whose typical level differs from the paper's by less than this (about 12 of 255 grey levels) is
# scanner or compression noise on a blank page, not a stroke: even faint pencil is several times that.
MIN_CONTRAST = 12 / 255
# The ink level that becomes full white is this percentile of the ink pixels' strength, not their
# maximum, so a few extra-dark specks do not turn the rest of a pencil stroke grey.
INK_PERCENTILE = 90
# Paper pixels within this many (robust) standard deviations of the paper's level are paper noise: they
# become exactly black, and only they are used to fit the paper's level across the page.
PAPER_SPREAD = 3.0
# Larger images are shrunk to at most this side before anything else: the result is 20-odd pixels, and
# a 12-megapixel photo would otherwise take seconds per image.
MAX_SIDE = 1024
# An image whose longer side is shorter than this cannot be told to be any character (a stray 1x2 crop).
MIN_SIDE = 8

Source = str | os.PathLike | IO[bytes]


class NotACharacter(DataError):
    """An image file that cannot be a character: unreadable, blank (no ink) or too small.

    `file` names it and `reason` says why in a few words; the message adds what to do.
    """

    def __init__(self, file: str, reason: str, advice: str = "") -> None:
        super().__init__(f"{file} {reason}." + (f" {advice}" if advice else ""))
        self.file = file
        self.reason = reason


@dataclass
class Preprocessing:
    """The conversion's settings; `key` names them in cache file names.

    `size` is the (height, width) of the result; `fit_size` the longer side of the character in it
    (MNIST fits 20 of 28). `ink` is the strokes' polarity: "dark" on light paper, "light" on dark paper,
    or "auto" to decide per image. `ink_threshold` (1-255), when set, is the ink strength (darkness for
    dark ink, brightness for light ink) from which a pixel counts as ink, instead of Otsu's threshold.
    """

    size: tuple[int, int]
    fit_size: int = 20
    ink: str = "auto"
    ink_threshold: int | None = None

    def __post_init__(self) -> None:
        self.size = (int(self.size[0]), int(self.size[1]))
        if not 0 < int(self.fit_size) <= min(self.size):
            raise ConfigError(
                f"dataset.fit_size={self.fit_size} must be between 1 and the image size {min(self.size)} "
                f"(MNIST fits its characters into 20 of 28 pixels)."
            )
        if self.ink not in INK:
            raise ConfigError(
                f"dataset.ink={self.ink} must be one of {', '.join(INK)}: dark for dark strokes on light "
                f"paper, light for light strokes on dark paper, auto to detect it per image."
            )
        if self.ink_threshold is not None and not 0 < int(self.ink_threshold) <= 255:
            raise ConfigError(
                f"dataset.ink_threshold={self.ink_threshold} must be an ink strength between 1 and 255 "
                f"(darkness for dark ink, brightness for light ink), or null to use Otsu's threshold."
            )
        self.fit_size = int(self.fit_size)
        self.ink_threshold = None if self.ink_threshold is None else int(self.ink_threshold)

    @property
    def key(self) -> str:
        threshold = "otsu" if self.ink_threshold is None else f"t{self.ink_threshold}"
        height, width = self.size
        return f"{height}x{width}-fit{self.fit_size}-ink{self.ink}-{threshold}-v{VERSION}"

    def convert(self, source: Source, name: str) -> np.ndarray:
        """The image file `source` as a uint8 array of `size`; NotACharacter naming `name` when it cannot
        be read, is too small or has no ink."""
        return to_mnist_format(read_grey(source, name, self.ink), name, self)


def image_suffixes() -> frozenset[str]:
    """The file suffixes of every format Pillow can open (.png, .jpg, .bmp, .tif, ...), lower case."""
    Image.init()
    return frozenset(suffix for suffix, kind in Image.registered_extensions().items() if kind in Image.OPEN)


def read_grey(source: Source, name: str, ink: str = "auto") -> np.ndarray:
    """Any image Pillow opens, as grey levels in [0, 1] (0 = black), upright by its EXIF orientation.

    Transparent pixels show the paper: white behind dark ink, black behind light ink; with `ink="auto"`
    the opaque pixels are taken for the ink, so a stroke drawn on a transparent layer is kept whatever its
    colour. Images larger than MAX_SIDE are shrunk by area averaging. Raises NotACharacter naming `name`
    for a file that is not an image or is truncated.
    """
    try:
        with Image.open(source) as image:
            image.draft("L", (MAX_SIDE, MAX_SIDE))  # a JPEG decodes straight to a smaller grey image
            image.load()  # decode everything now, so a truncated file fails here and nowhere later
            ImageOps.exif_transpose(image, in_place=True)  # phone photos store "rotate me" in EXIF
            grey = _grey(image, ink)
    except Exception as exc:  # Pillow raises OSError, ValueError, SyntaxError, zlib.error, ...
        raise NotACharacter(name, f"cannot be read as an image ({type(exc).__name__}: {exc})") from None
    factor = -(-max(grey.shape) // MAX_SIDE)
    if factor > 1:
        grey = np.asarray(Image.fromarray(grey.astype(np.float32)).reduce(factor), dtype=np.float64)
    return grey


def _grey(image: Image.Image, ink: str) -> np.ndarray:
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        # Pillow's own conversion to "L" clips 16-bit values at 255 instead of scaling them.
        values = np.asarray(image, dtype=np.float64)
        full = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        if image.mode == "F" and values.max() <= 1.0:
            full = 1.0
        return np.clip(values / full, 0.0, 1.0)
    bands = image.getbands()
    if "A" in bands or "a" in bands or "transparency" in image.info:
        rgba = image.convert("RGBA")
        grey = np.asarray(rgba.convert("L"), dtype=np.float64) / 255
        alpha = np.asarray(rgba.getchannel("A"), dtype=np.float64) / 255
        return alpha * grey + (1.0 - alpha) * _paper_behind(grey, alpha, ink)
    if image.mode not in ("1", "L", "P", "RGB"):
        image = image.convert("RGB")  # CMYK, YCbCr, LAB, HSV: Pillow reaches "L" through RGB
    return np.asarray(image.convert("L"), dtype=np.float64) / 255


def _paper_behind(grey: np.ndarray, alpha: np.ndarray, ink: str) -> float:
    """The grey level to show through transparent pixels: the opposite of the ink's."""
    if ink != "auto":
        return 1.0 if ink == "dark" else 0.0
    opaque = alpha.sum()
    return 0.0 if opaque > 0 and (alpha * grey).sum() / opaque > 0.5 else 1.0


def otsu_threshold(values: np.ndarray) -> float | None:
    """The level that best splits `values` in two (Otsu, 1979: the largest variance between the classes,
    over a 256-bin histogram of their range); values below it form the low class. None when all values
    are equal, so there is nothing to split."""
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return None
    counts, edges = np.histogram(values, bins=256, range=(low, high))
    share = counts / values.size
    levels = (edges[:-1] + edges[1:]) / 2
    low_share = np.cumsum(share)[:-1]  # the low class holds bins 0..k for a split after bin k
    low_mass = np.cumsum(share * levels)[:-1]
    mean = low_mass[-1] + share[-1] * levels[-1]
    valid = (low_share > 0) & (low_share < 1)
    between = np.full(low_share.shape, -1.0)
    between[valid] = (mean * low_share[valid] - low_mass[valid]) ** 2 / (
        low_share[valid] * (1 - low_share[valid])
    )
    return float(edges[int(np.argmax(between)) + 1])


def light_ink(dark: np.ndarray) -> bool:
    """Whether the ink is the light class of a thresholded image (`dark`: True below the threshold).

    The paper is the majority; when neither class clearly is (a bold character cropped tightly), the
    class that holds most of the border is the paper.
    """
    dark_share = dark.mean()
    if abs(dark_share - 0.5) > 0.1:
        return bool(dark_share > 0.5)
    border = np.concatenate([dark[0], dark[-1], dark[1:-1, 0], dark[1:-1, -1]])
    return bool(border.mean() > 0.5)


def paper_surface(strength: np.ndarray, paper: np.ndarray) -> np.ndarray:
    """The paper's own level at every pixel: a quadratic surface fitted to the `paper` pixels (refitted
    once without outliers), so a shadow or a lighting gradient across the page is not taken for ink."""
    rows, cols = np.nonzero(paper)
    target = strength[rows, cols]
    # Flat already (a clean scan, a drawing program's white), or too little paper to fit a surface to.
    if len(rows) < 64 or target.min() == target.max():
        return np.full(strength.shape, float(np.median(target)) if len(rows) else 0.0)
    step = max(1, len(rows) // 20_000)  # a subsample pins six coefficients just as well
    rows, cols, target = rows[::step], cols[::step], target[::step]
    height, width = strength.shape
    design = _quadratic_terms(rows / max(height - 1, 1), cols / max(width - 1, 1))
    keep = np.ones(len(target), dtype=bool)
    for _ in range(2):
        # The 6x6 normal equations: as exact here as a full least-squares solve, and far cheaper.
        kept = design[keep]
        coefficients = np.linalg.lstsq(kept.T @ kept, kept.T @ target[keep], rcond=None)[0]
        residual = target - design @ coefficients
        keep = np.abs(residual) <= max(PAPER_SPREAD * _robust_std(residual, 0.0), 1 / 255)
    # Term by term: a (height, width, 6) array of the terms, multiplied out, was the slowest step of a
    # large scan's conversion.
    y = (np.arange(height) / max(height - 1, 1))[:, None]
    x = (np.arange(width) / max(width - 1, 1))[None, :]
    const, cx, cy, cxx, cyy, cxy = coefficients
    return const + cx * x + cy * y + cxx * x * x + cyy * y * y + cxy * x * y


def _quadratic_terms(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.stack([np.ones_like(x), x, y, x * x, y * y, x * y], axis=-1)


def ink_intensity(grey: np.ndarray, name: str, settings: Preprocessing) -> tuple[np.ndarray, np.ndarray]:
    """(ink mask, intensity in [0, 1]) of a character image: paper exactly 0, ink up to 1.

    Otsu's threshold (or `ink_threshold`) tells ink from paper. The paper's level is then fitted across
    the page, each pixel's ink strength measured from it, and Otsu's split made again on that flattened
    page, twice, so a shadow first taken for ink drops out: grey or unevenly lit paper and faint pencil
    give a black background. Paper noise up to PAPER_SPREAD deviations becomes 0; the ink's
    INK_PERCENTILE strength becomes 1.
    """
    threshold = otsu_threshold(grey)
    if threshold is None:
        raise _no_ink(name, "every pixel has the same grey level")
    dark = grey < threshold
    is_light = light_ink(dark) if settings.ink == "auto" else settings.ink == "light"
    strength = grey if is_light else 1.0 - grey  # ink high, paper low, whatever the polarity
    if settings.ink_threshold is None:
        ink = ~dark if is_light else dark
    else:
        ink = strength >= settings.ink_threshold / 255
        if not ink.any():
            raise _no_ink(name, f"no pixel is as strong as dataset.ink_threshold={settings.ink_threshold}")
    relative = strength
    for _ in range(1 if settings.ink_threshold is not None else 2):
        relative = strength - paper_surface(strength, ~ink)
        if settings.ink_threshold is None:
            flat_threshold = otsu_threshold(relative)
            if flat_threshold is None:
                raise _no_ink(name, "it is the paper's own shading and nothing else")
            ink = relative >= flat_threshold
    paper, stroke = relative[~ink], relative[ink]
    paper_median = float(np.median(paper)) if paper.size else 0.0
    if float(np.median(stroke)) - paper_median < MIN_CONTRAST:
        raise _no_ink(name, "its darkest and lightest parts differ by no more than noise")
    floor = min(paper_median + PAPER_SPREAD * _robust_std(paper, paper_median), float(stroke.min()))
    full = max(float(np.percentile(stroke, INK_PERCENTILE)), floor + MIN_CONTRAST)
    return ink, np.clip((relative - floor) / (full - floor), 0.0, 1.0)


def to_mnist_format(grey: np.ndarray, name: str, settings: Preprocessing) -> np.ndarray:
    """A character image (grey levels in [0, 1]) in MNIST's format: uint8 `settings.size`, paper exactly
    black, ink white with its grey levels kept (`ink_intensity`). Raises NotACharacter naming `name` for
    an image with no ink or smaller than MIN_SIDE.

    MNIST's procedure: crop to the ink, scale the longer side to `fit_size` keeping the aspect ratio
    (area-averaged, so thin strokes become grey levels), stretch the densest pixel to 255, and place the
    character so its centre of mass sits at the image centre (clamped so no ink leaves the image).
    """
    if max(grey.shape) < MIN_SIDE:
        raise NotACharacter(
            name,
            f"is {grey.shape[1]}x{grey.shape[0]} pixels, too small to hold a character (it takes at least "
            f"{MIN_SIDE} on its longer side)",
        )
    ink, intensity = ink_intensity(grey, name, settings)
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    crop = intensity[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    glyph = Image.fromarray(crop.astype(np.float32))  # float, so averaging never rounds a faint stroke away
    scale = settings.fit_size / max(glyph.size)
    # Area averaging when shrinking (MNIST's anti-aliasing); bilinear when growing a small crop, as
    # area averaging would repeat pixels into blocks.
    resample = Image.Resampling.BOX if scale <= 1 else Image.Resampling.BILINEAR
    glyph = glyph.resize((max(1, round(glyph.width * scale)), max(1, round(glyph.height * scale))), resample)
    pixels = np.clip(np.asarray(glyph, dtype=np.float64), 0.0, None)
    if pixels.max() <= 0:
        raise _no_ink(name, f"its strokes vanish when fitted into {settings.fit_size} pixels")
    pixels *= 255.0 / pixels.max()

    height, width = settings.size
    mass = pixels.sum()
    centre_row = np.arange(glyph.height) @ pixels.sum(axis=1) / mass
    centre_col = np.arange(glyph.width) @ pixels.sum(axis=0) / mass
    top = int(np.clip(round((height - 1) / 2 - centre_row), 0, height - glyph.height))
    left = int(np.clip(round((width - 1) / 2 - centre_col), 0, width - glyph.width))
    canvas = np.zeros((height, width), dtype=np.float64)
    canvas[top : top + glyph.height, left : left + glyph.width] = pixels
    return np.rint(canvas).astype(np.uint8)


def _robust_std(values: np.ndarray, median: float) -> float:
    """The standard deviation of the bulk of `values`, unmoved by the few stroke edges among them."""
    return 1.4826 * float(np.median(np.abs(values - median))) if values.size else 0.0


def _no_ink(name: str, why: str) -> NotACharacter:
    return NotACharacter(
        name,
        f"has no ink: {why}",
        "Remove the image if it is blank; if its strokes are there but faint, set dataset.ink_threshold "
        "to the ink strength (1-255) from which a pixel counts as ink.",
    )
