"""`python -m handwriting_gan [overrides]`: train a GAN (see handwriting_gan.train)."""

from handwriting_gan.train import main

main()
