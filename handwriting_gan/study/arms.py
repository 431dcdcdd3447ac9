"""The study's arms, listed once in ARMS: each way of training the classifier on one GAN run's real
images, and the kinds of extra images each adds (made and trained in handwriting_gan.study.training)."""

from __future__ import annotations

from dataclasses import dataclass

#: Each kind of extra images an arm can add (a property of training.TrainingSets), and what the
#: progress lines call its images.
KINDS = {"classical": "augmented", "synthetic": "synthetic", "filtered": "synthetic"}


@dataclass(frozen=True)
class Arm:
    """One way of training the classifier: the real images and the extra images of each kind it adds."""

    #: Its letter in the table's titles and description.
    letter: str
    #: Its key in results.json and in the table's row keys (<key>_mean, <key>_std).
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


#: Every arm, in the table's order. A new arm is one entry here (and, for a new kind of extra images,
#: one entry of KINDS and one property of training.TrainingSets that makes them).
ARMS = (
    Arm("a", "real", "real"),
    Arm("b", "classical", "+ classical aug.", ("classical",)),
    Arm("c", "synthetic", "+ synthetic", ("synthetic",)),
    Arm("d", "filtered", "+ filtered synthetic", ("filtered",)),
    Arm("e", "both", "+ classical aug. + filtered synthetic", ("classical", "filtered")),
)
