"""Augmentations the game applies to every image the discriminator sees, real and generated alike."""
