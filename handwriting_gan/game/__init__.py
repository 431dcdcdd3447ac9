"""The two-player game: the LightningModule (gan.py), its variant on pairs of images for an
image-conditional augmenter (pairs.py), the semi-supervised game whose discriminator classifies
(semi.py), the losses it can be played with (losses.py), what it keeps for
exact resumes (bookkeeping.py), and CUDA-graph replay of its batch (cuda_graph.py)."""

from handwriting_gan.game.gan import GAN
from handwriting_gan.game.pairs import PairGAN
from handwriting_gan.game.semi import SemiSupervisedGAN

__all__ = ["GAN", "PairGAN", "SemiSupervisedGAN"]
