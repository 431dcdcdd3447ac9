"""`python -m handwriting_gan [overrides]`: train a GAN (see handwriting_gan.cli)."""

from handwriting_gan.cli import main

main()
