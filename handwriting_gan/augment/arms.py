"""The arms, listed once in ARMS: each way of training a classifier on a few real images per class, and
the kinds of extra images each adds. The study trains them (study/training.py makes each kind) and the
expand command measures (a), (b) and (g) of them on a user's own images; `mean_std` summarises an arm's
accuracies over seeds for both."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

#: Each kind of extra images an arm can add (a property of training.TrainingSets), and what the
#: progress lines call its images.
KINDS = {
    "classical": "augmented",
    "synthetic": "synthetic",
    "filtered": "synthetic",
    "augmenter": "varied",
    "augmenter_classical": "varied + augmented",
    "augmenter_checked": "varied and checked",
}
#: The kinds made from a GAN run trained on the real images (its export): arms adding them need the run.
GAN_KINDS = ("synthetic", "filtered")


@dataclass(frozen=True)
class Arm:
    """One way of training the classifier: the real images and the extra images of each kind it adds."""

    #: Its letter in the table's titles and description.
    letter: str
    #: Its key in results.json, in the table's row keys (<key>_mean, <key>_std) and in `arms=[...]`.
    key: str
    #: What it is, after its letter in the table's column title and the plot's legend.
    name: str
    #: The kinds of extra images (keys of KINDS) added to the real ones, in order.
    adds: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        return f"({self.letter}) {self.name}"

    @property
    def filtered(self) -> bool:
        """Adds the synthetic images that pass filter_confidence: its column names the threshold, and its
        results say what fraction of the synthetic images was kept."""
        return "filtered" in self.adds

    @property
    def checked(self) -> bool:
        """Adds the augmenter's variations that (b)'s classifier reads as their source's class: its
        results say what fraction of the variations was kept."""
        return "augmenter_checked" in self.adds

    @property
    def needs_gan(self) -> bool:
        """Adds images of a GAN trained on the real ones: the study trains, measures and exports one."""
        return any(kind in GAN_KINDS for kind in self.adds)

    @property
    def needs_augmenter(self) -> bool:
        return any(kind.startswith("augmenter") for kind in self.adds)


#: Every arm, in the table's order. A new arm is one entry here (and, for a new kind of extra images,
#: one entry of KINDS and one property of training.TrainingSets that makes them). (d) and (e) filter
#: with the domain classifier trained on the FULL dataset, which a user with few images does not have:
#: their names say so, and their gains are an upper bound, not a result. (i) filters with what the user
#: has.
ARMS = (
    Arm("a", "real", "real"),
    Arm("b", "classical", "+ tuned classical aug.", ("classical",)),
    Arm("c", "synthetic", "+ synthetic", ("synthetic",)),
    Arm("d", "filtered", "+ synthetic, oracle filter", ("filtered",)),
    Arm("e", "both", "+ classical + synthetic, oracle filter", ("classical", "filtered")),
    Arm("f", "augmenter", "+ augmenter", ("augmenter",)),
    Arm("g", "classical_augmenter", "+ classical + augmenter", ("classical", "augmenter")),
    Arm(
        "h",
        "classical_augmenter_classical",
        "+ classical + augmenter, then classical",
        ("classical", "augmenter_classical"),
    ),
    # The filter a user has: the classifier of (b), trained on the few real images and their classical
    # copies, drops the variations it reads as another class than their source's.
    Arm(
        "i",
        "classical_augmenter_checked",
        "+ classical + augmenter, checked by (b)'s classifier",
        ("classical", "augmenter_checked"),
    ),
)
#: `arms=[...]` keys by name.
BY_KEY = {arm.key: arm for arm in ARMS}


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation; std is None for a single value, both None for none."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None
